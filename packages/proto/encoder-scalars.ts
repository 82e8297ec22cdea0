/**
 * Scalar field writers of `compileEncoder` (./encoder.ts): tags, wire types,
 * per-type value writers with protobuf-es' range checks, and the zero tests of
 * implicit presence (`isScalarZeroValue` in protobuf-es).
 */

import { ScalarType } from "@bufbuild/protobuf";
import {
  EncodeError,
  writeBytes,
  writeDouble,
  writeFixed32,
  writeFixed64,
  writeFloat,
  writeInt32,
  writeInt64,
  writeSint64,
  writeString,
  writeUint64,
  writeVarint32,
} from "./encoder-writer.ts";

/** A message as the encoder sees it: a bag of properties named by each field's localName. */
export type Obj = Record<string, unknown>;
/** Writes one value (with or without its tag, as documented where made). */
export type ValueWriter = (v: unknown) => void;
/** Writes one field (or a whole body) of a message. */
export type FieldWriter = (m: Obj) => void;

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

export function tagOf(no: number, wireType: number): number {
  return ((no << 3) | wireType) >>> 0;
}

export function wireTypeOf(t: ScalarType): number {
  switch (t) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WIRE_LEN;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WIRE_I64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WIRE_I32;
    default:
      return WIRE_VARINT;
  }
}

/** Writer of one scalar value without its tag; `where` names the field in errors. */
export function scalarValue(t: ScalarType, where: string): ValueWriter {
  const bad = (kind: string, v: unknown): EncodeError =>
    new EncodeError(`cannot encode field ${where} to binary: invalid ${kind}: ${String(v)}`);
  switch (t) {
    case ScalarType.STRING:
      return (v) => {
        if (typeof v !== "string") throw bad("string", v);
        writeString(v);
      };
    case ScalarType.BYTES:
      return (v) => {
        if (!(v instanceof Uint8Array)) throw bad("bytes", v);
        writeBytes(v);
      };
    case ScalarType.BOOL:
      return (v) => writeVarint32(v ? 1 : 0);
    case ScalarType.UINT32:
      return (v) => {
        if (typeof v !== "number" || v >>> 0 !== v) throw bad("uint32", v);
        writeVarint32(v);
      };
    case ScalarType.INT32:
      return (v) => {
        if (typeof v !== "number" || (v | 0) !== v) throw bad("int32", v);
        writeInt32(v);
      };
    case ScalarType.SINT32:
      return (v) => {
        if (typeof v !== "number" || (v | 0) !== v) throw bad("int32", v);
        writeVarint32(((v << 1) ^ (v >> 31)) >>> 0);
      };
    case ScalarType.FIXED32:
      return (v) => {
        if (typeof v !== "number" || v >>> 0 !== v) throw bad("uint32", v);
        writeFixed32(v);
      };
    case ScalarType.SFIXED32:
      return (v) => {
        if (typeof v !== "number" || (v | 0) !== v) throw bad("int32", v);
        writeFixed32(v);
      };
    case ScalarType.INT64:
      return writeInt64;
    case ScalarType.UINT64:
      return writeUint64;
    case ScalarType.SINT64:
      return writeSint64;
    case ScalarType.FIXED64:
      return (v) => writeFixed64(v, false);
    case ScalarType.SFIXED64:
      return (v) => writeFixed64(v, true);
    case ScalarType.DOUBLE:
      return (v) => writeDouble(v as number);
    case ScalarType.FLOAT:
      return (v) => writeFloat(v as number);
  }
}

/** Zero test of protobuf-es (`isScalarZeroValue`): such values are omitted under implicit presence. */
function zeroTest(t: ScalarType): (v: unknown) => boolean {
  switch (t) {
    case ScalarType.BOOL:
      return (v) => v === false;
    case ScalarType.STRING:
      return (v) => v === "";
    case ScalarType.BYTES:
      return (v) => v instanceof Uint8Array && v.byteLength === 0;
    default:
      // biome-ignore lint/suspicious/noDoubleEquals: loose like protobuf-es, so 0, 0n and "0" all count
      return (v) => v == 0;
  }
}

function zeroValue(t: ScalarType): unknown {
  switch (t) {
    case ScalarType.BOOL:
      return false;
    case ScalarType.STRING:
      return "";
    case ScalarType.BYTES:
      return new Uint8Array(0);
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 0n;
    default:
      return 0;
  }
}

/**
 * Tag + value of an implicit-presence scalar: zero values are skipped and a
 * missing value is written as zero, as `toBinary` does.
 */
export function implicitScalar(no: number, t: ScalarType, where: string): ValueWriter {
  const tag = tagOf(no, wireTypeOf(t));
  // Specialised forms of the most common field types (one call less per field).
  if (t === ScalarType.STRING) {
    return (v) => {
      if (v === "") return;
      writeVarint32(tag);
      if (typeof v === "string") writeString(v);
      else if (v === undefined) writeString("");
      else
        throw new EncodeError(
          `cannot encode field ${where} to binary: invalid string: ${String(v)}`,
        );
    };
  }
  if (t === ScalarType.UINT32) {
    return (v) => {
      if (v === 0) return;
      if (v === undefined) v = 0;
      else if (typeof v !== "number" || v >>> 0 !== v) {
        throw new EncodeError(
          `cannot encode field ${where} to binary: invalid uint32: ${String(v)}`,
        );
      }
      writeVarint32(tag);
      writeVarint32(v as number);
    };
  }
  if (t === ScalarType.BOOL) {
    return (v) => {
      if (v === false) return;
      writeVarint32(tag);
      writeVarint32(v ? 1 : 0);
    };
  }
  const write = scalarValue(t, where);
  const isZero = zeroTest(t);
  const zero = zeroValue(t);
  return (v) => {
    if (isZero(v)) return;
    writeVarint32(tag);
    write(v === undefined ? zero : v);
  };
}

/** An implicit-presence scalar field read straight from the message (saves a call for common types). */
export function implicitField(name: string, no: number, t: ScalarType, where: string): FieldWriter {
  const tag = tagOf(no, wireTypeOf(t));
  const writeImplicit = implicitScalar(no, t, where);
  if (t === ScalarType.STRING) {
    return (m) => {
      const v = m[name];
      if (typeof v === "string" && v !== "") {
        writeVarint32(tag);
        writeString(v);
      } else if (v !== "") {
        writeImplicit(v);
      }
    };
  }
  if (t === ScalarType.UINT32) {
    return (m) => {
      const v = m[name];
      if (typeof v === "number" && v >>> 0 === v) {
        if (v === 0) return;
        writeVarint32(tag);
        writeVarint32(v);
      } else {
        writeImplicit(v);
      }
    };
  }
  return (m) => writeImplicit(m[name]);
}

/** Tag + value, always written (explicit presence, oneof members, map entries, list items). */
export function taggedScalar(no: number, t: ScalarType, where: string): ValueWriter {
  const tag = tagOf(no, wireTypeOf(t));
  const write = scalarValue(t, where);
  return (v) => {
    writeVarint32(tag);
    write(v);
  };
}

/** Map keys are object property names; turn them back into key values as protobuf-es does. */
export function mapKey(t: ScalarType): (k: string) => unknown {
  switch (t) {
    case ScalarType.STRING:
      return (k) => k;
    case ScalarType.BOOL:
      return (k) => k === "true";
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return (k) => k;
    default:
      return (k) => Number.parseInt(k, 10);
  }
}
