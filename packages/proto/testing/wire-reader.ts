/**
 * A minimal protobuf wire-format reader, written independently of
 * @bufbuild/protobuf so tests can check field numbers and wire types of
 * encoded messages byte by byte. Test support only; not exported by the
 * package index.
 */

/** Wire types of the protobuf encoding (groups are not supported). */
export const WireType = { varint: 0, i64: 1, len: 2, i32: 5 } as const;

/** One field occurrence as it appears on the wire. */
export interface WireField {
  /** Field number from the tag. */
  field: number;
  /** Wire type from the tag (see {@link WireType}). */
  wireType: number;
  /** Value of a varint field. */
  varint?: bigint;
  /** Payload of a length-delimited field, or the 4/8 raw bytes of i32/i64. */
  bytes?: Uint8Array;
}

/** Thrown when bytes are not valid protobuf wire format or a path is absent. */
export class WireReadError extends Error {
  override name = "WireReadError";
}

function readVarint(bytes: Uint8Array, start: number): { value: bigint; next: number } {
  let value = 0n;
  let shift = 0n;
  for (let pos = start; pos < bytes.length && shift < 70n; pos++) {
    const b = bytes[pos] ?? 0;
    value |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return { value, next: pos + 1 };
    shift += 7n;
  }
  throw new WireReadError(`unterminated varint at offset ${start}`);
}

/** Splits one message's bytes into its top-level fields, in wire order. */
export function readFields(bytes: Uint8Array): WireField[] {
  const fields: WireField[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const tag = readVarint(bytes, pos);
    pos = tag.next;
    const field = Number(tag.value >> 3n);
    const wireType = Number(tag.value & 7n);
    if (field === 0) throw new WireReadError(`field number 0 at offset ${pos}`);
    if (wireType === WireType.varint) {
      const v = readVarint(bytes, pos);
      fields.push({ field, wireType, varint: v.value });
      pos = v.next;
    } else if (wireType === WireType.len) {
      const len = readVarint(bytes, pos);
      const end = len.next + Number(len.value);
      if (end > bytes.length) throw new WireReadError(`field ${field} overruns the buffer`);
      fields.push({ field, wireType, bytes: bytes.subarray(len.next, end) });
      pos = end;
    } else if (wireType === WireType.i64 || wireType === WireType.i32) {
      const size = wireType === WireType.i64 ? 8 : 4;
      if (pos + size > bytes.length) throw new WireReadError(`field ${field} overruns the buffer`);
      fields.push({ field, wireType, bytes: bytes.subarray(pos, pos + size) });
      pos += size;
    } else {
      throw new WireReadError(`unsupported wire type ${wireType} for field ${field}`);
    }
  }
  return fields;
}

/**
 * Follows a path of field numbers through nested messages (first occurrence
 * at each level) and returns the last field. Every field but the last must be
 * length-delimited.
 */
export function fieldAt(bytes: Uint8Array, path: readonly number[]): WireField {
  let current = bytes;
  let found: WireField | undefined;
  for (const [depth, number] of path.entries()) {
    found = readFields(current).find((f) => f.field === number);
    if (found === undefined) {
      throw new WireReadError(`field ${path.slice(0, depth + 1).join(".")} not on the wire`);
    }
    if (depth < path.length - 1) {
      if (found.bytes === undefined || found.wireType !== WireType.len) {
        throw new WireReadError(`field ${path.slice(0, depth + 1).join(".")} is not a message`);
      }
      current = found.bytes;
    }
  }
  if (found === undefined) throw new WireReadError("empty path");
  return found;
}

/** Decodes a length-delimited field's payload as UTF-8. */
export function asString(field: WireField): string {
  if (field.bytes === undefined) throw new WireReadError(`field ${field.field} has no bytes`);
  return new TextDecoder().decode(field.bytes);
}
