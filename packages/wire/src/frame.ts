import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type RawFrame, RawFrameSchema } from "@periscope/proto";

/** A `periscope.raw.v1.RawFrame` could not be decoded or breaks its invariants. */
export class MalformedFrameError extends Error {
  override name = "MalformedFrameError";
}

/** Fields accepted by {@link createRawFrame}; unset fields take proto3 defaults. */
export type RawFrameInit = MessageInitShape<typeof RawFrameSchema>;

/** Builds a RawFrame message (records are kept by reference, not copied). */
export function createRawFrame(init: RawFrameInit): RawFrame {
  return create(RawFrameSchema, init);
}

/** Encodes a RawFrame (or its init shape) to protobuf bytes for `periscope.raw.<node>.<p>`. */
export function encodeRawFrame(frame: RawFrame | RawFrameInit): Uint8Array {
  const msg = "$typeName" in frame ? (frame as RawFrame) : create(RawFrameSchema, frame);
  return toBinary(RawFrameSchema, msg);
}

/**
 * Decodes protobuf bytes into a RawFrame and checks what readers rely on:
 * a non-empty node name and boot id, and seq ≥ 1.
 * @throws MalformedFrameError naming what is wrong (with the parse error as cause).
 */
export function decodeRawFrame(bytes: Uint8Array): RawFrame {
  let frame: RawFrame;
  try {
    frame = fromBinary(RawFrameSchema, bytes);
  } catch (cause) {
    throw new MalformedFrameError(`raw frame: not a valid protobuf (${bytes.length} bytes)`, {
      cause,
    });
  }
  if (frame.nodeName === "") throw new MalformedFrameError("raw frame: node_name is empty");
  if (frame.bootId === "") throw new MalformedFrameError("raw frame: boot_id is empty");
  if (frame.seq === 0n) throw new MalformedFrameError("raw frame: seq is 0 (sequences start at 1)");
  return frame;
}
