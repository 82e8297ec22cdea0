/**
 * Streaming access to the compiled encoder's writer (./encoder-writer.ts), for
 * hot paths that write a message's bytes field by field instead of building
 * protobuf-es messages first (the enricher's FlowBatch writer). Everything
 * written between `streamBegin()` and `streamTake()` lands in one buffer; compiled
 * field encoders (`compileFieldEncoder`) write nested messages into it. Do not
 * call a `compileEncoder` function between the two: it starts its own message
 * in the same buffer.
 */

import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { compileNested } from "./encoder.ts";
import { tagOf, WIRE_LEN, WIRE_VARINT } from "./encoder-scalars.ts";
import {
  beginLength,
  copyOut,
  endLength,
  moveRanges,
  resetWriter,
  rewind,
  takeBytes,
  writeAsciiBytes,
  writeInt32,
  writeMacString,
  writeRaw,
  writerPosition,
  writeString,
  writeVarint32,
} from "./encoder-writer.ts";

export {
  beginLength,
  copyOut,
  endLength,
  moveRanges,
  rewind,
  tagOf,
  WIRE_LEN,
  WIRE_VARINT,
  writeAsciiBytes,
  writeInt32,
  writeMacString,
  writeRaw,
  writeString,
  writeVarint32,
  writerPosition,
};

/** Starts a new top-level message in the shared buffer. */
export function streamBegin(): void {
  resetWriter();
}

/** Copies out everything written since `streamBegin()`. */
export function streamTake(): Uint8Array {
  return takeBytes();
}

/**
 * Tag, length and body of a `schema` message as field `no` of the message being
 * written, with the bytes `toBinary` gives that field.
 */
export function compileFieldEncoder<Desc extends DescMessage>(
  no: number,
  schema: Desc,
): (msg: MessageShape<Desc>) => void {
  const write = compileNested(no, schema);
  return (msg) => write(msg);
}

/** Field number of `schema`'s field named `name` (proto name); throws when there is none. */
export function fieldNumber(schema: DescMessage, name: string): number {
  const f = schema.fields.find((x) => x.name === name);
  if (f === undefined) throw new Error(`${schema.typeName} has no field ${name}`);
  return f.number;
}
