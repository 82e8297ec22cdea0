/**
 * Low-level protobuf wire writer behind `compileEncoder` (./encoder.ts): one
 * module-wide growable scratch buffer, written front to back (a message encoded while
 * another is being written goes into a buffer apart: {@link encodeApart}). Length prefixes
 * of nested messages, packed lists and strings are reserved with a size guess
 * and moved into place when the guess was wrong, so encoding needs no separate
 * size pass. Encoding is synchronous, so one buffer serves every encoder; each
 * top-level encode starts with `resetWriter()` and ends with `takeBytes()`.
 *
 * The byte layout of every primitive follows @bufbuild/protobuf's BinaryWriter
 * (negative int32/enum values as 10-byte varints, lone UTF-16 surrogates as
 * U+FFFD, little-endian fixed-width values), so output is byte-identical to
 * `toBinary`.
 */

import { protoInt64 } from "@bufbuild/protobuf";

/** Thrown when a field value cannot be encoded (wrong type, out of range). */
export class EncodeError extends Error {
  override name = "EncodeError";
}

const INITIAL_BYTES = 64 * 1024;
/** Buffers grown beyond this are dropped after use so one huge message does not pin memory. */
const RETAIN_BYTES = 4 * 1024 * 1024;
const UINT32_LIMIT = 0xffffffffn;
const FLOAT32_MAX = 3.4028234663852886e38;

let buf = new Uint8Array(INITIAL_BYTES);
let pos = 0;
const scratch = new DataView(new ArrayBuffer(8));

/** A top-level message is being written (between `resetWriter()` and `takeBytes()`). */
let open = false;
/** The buffer of messages encoded apart while another is open (see {@link encodeApart}). */
let spare = new Uint8Array(1024);
let apartDepth = 0;

/** Starts a new top-level message. */
export function resetWriter(): void {
  pos = 0;
  open = true;
  if (buf.length > RETAIN_BYTES) buf = new Uint8Array(INITIAL_BYTES);
}

/** Copies out everything written since `resetWriter()`. */
export function takeBytes(): Uint8Array {
  open = false;
  return buf.slice(0, pos);
}

/**
 * The bytes `write` writes as a top-level message of its own. When another is open (an
 * encoder called while a streamed message is being written, e.g. to build a field's
 * bytes), it is written into a buffer apart and the open one is left as it was.
 */
export function encodeApart(write: () => void): Uint8Array {
  if (!open) {
    resetWriter();
    try {
      write();
      return takeBytes();
    } finally {
      open = false;
    }
  }
  const outerBuf = buf;
  const outerPos = pos;
  // One apart inside another gets a buffer of its own.
  buf = apartDepth === 0 ? spare : new Uint8Array(1024);
  pos = 0;
  apartDepth++;
  try {
    write();
    return buf.slice(0, pos);
  } finally {
    apartDepth--;
    if (apartDepth === 0) spare = buf.length > RETAIN_BYTES ? new Uint8Array(1024) : buf;
    buf = outerBuf;
    pos = outerPos;
  }
}

/** Makes room for `n` more bytes. */
export function ensure(n: number): void {
  if (pos + n > buf.length) {
    const next = new Uint8Array(Math.max(buf.length * 2, pos + n));
    next.set(buf.subarray(0, pos));
    buf = next;
  }
}

/** Number of bytes of `v` (0 ≤ v < 2^32) as a varint. */
export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Writes 0 ≤ v < 2^32 as a varint (tags, lengths, uint32, non-negative int32). */
export function writeVarint32(v: number): void {
  ensure(5);
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
}

/** Writes a signed 32-bit value; negative values take 10 bytes (sign-extended to 64 bits). */
export function writeInt32(v: number): void {
  if (v >= 0) {
    writeVarint32(v);
    return;
  }
  ensure(10);
  for (let i = 0; i < 9; i++) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>= 7;
  }
  buf[pos++] = 1;
}

/** Writes a 64-bit varint given as two's-complement halves. */
export function writeVarint64(lo: number, hi: number): void {
  ensure(10);
  while (hi !== 0 || lo >>> 0 > 0x7f) {
    buf[pos++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  buf[pos++] = lo;
}

/** Writes an int64/sint64-typed source value (bigint, or string/number as protobuf-es accepts). */
export function writeInt64(v: unknown): void {
  if (typeof v === "bigint" && v >= 0n && v <= UINT32_LIMIT) {
    writeVarint32(Number(v));
    return;
  }
  const tc = protoInt64.enc(v as bigint);
  writeVarint64(tc.lo, tc.hi);
}

/** Writes a uint64-typed source value. */
export function writeUint64(v: unknown): void {
  if (typeof v === "bigint" && v >= 0n && v <= UINT32_LIMIT) {
    writeVarint32(Number(v));
    return;
  }
  const tc = protoInt64.uEnc(v as bigint);
  writeVarint64(tc.lo, tc.hi);
}

/** Writes a zig-zag encoded sint64. */
export function writeSint64(v: unknown): void {
  const tc = protoInt64.enc(v as bigint);
  const sign = tc.hi >> 31;
  writeVarint64((tc.lo << 1) ^ sign, ((tc.hi << 1) | (tc.lo >>> 31)) ^ sign);
}

/** Writes four little-endian bytes of a 32-bit pattern. */
export function writeFixed32(v: number): void {
  ensure(4);
  buf[pos++] = v & 0xff;
  buf[pos++] = (v >>> 8) & 0xff;
  buf[pos++] = (v >>> 16) & 0xff;
  buf[pos++] = (v >>> 24) & 0xff;
}

/** Writes a fixed64 (unsigned) or sfixed64 (signed) value as 8 little-endian bytes. */
export function writeFixed64(v: unknown, signed: boolean): void {
  const tc = signed ? protoInt64.enc(v as bigint) : protoInt64.uEnc(v as bigint);
  writeFixed32(tc.lo);
  writeFixed32(tc.hi);
}

/** Writes an IEEE-754 double. */
export function writeDouble(v: number): void {
  scratch.setFloat64(0, v, true);
  writeFixed32(scratch.getUint32(0, true));
  writeFixed32(scratch.getUint32(4, true));
}

/** Writes an IEEE-754 float; finite values beyond float32 range are rejected like protobuf-es does. */
export function writeFloat(v: number): void {
  if (Number.isFinite(v) && (v > FLOAT32_MAX || v < -FLOAT32_MAX)) {
    throw new EncodeError(`invalid float32: ${v}`);
  }
  scratch.setFloat32(0, v, true);
  writeFixed32(scratch.getUint32(0, true));
}

/** Writes length-prefixed raw bytes. */
export function writeBytes(v: Uint8Array): void {
  writeVarint32(v.byteLength);
  ensure(v.byteLength);
  buf.set(v, pos);
  pos += v.byteLength;
}

/** Appends bytes without a prefix (unknown fields). */
export function writeRaw(v: Uint8Array): void {
  ensure(v.byteLength);
  buf.set(v, pos);
  pos += v.byteLength;
}

/**
 * Reserves `reserve` bytes for a length prefix; returns where it starts. Pair
 * with `endLength(start, reserve)` once the payload is written.
 */
export function beginLength(reserve: number): number {
  ensure(reserve);
  const start = pos;
  pos += reserve;
  return start;
}

/** Writes the payload length at `start`, moving the payload if the reservation was off. Returns the length. */
export function endLength(start: number, reserve: number): number {
  const len = pos - start - reserve;
  const size = varintSize(len);
  if (size !== reserve) {
    if (size > reserve) ensure(size - reserve);
    buf.copyWithin(start + size, start + reserve, pos);
    pos += size - reserve;
  }
  let p = start;
  let v = len;
  while (v > 0x7f) {
    buf[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[p] = v;
  return len;
}

/** Writes a length-prefixed UTF-8 string (lone surrogates become U+FFFD, as TextEncoder does). */
export function writeString(s: string): void {
  const n = s.length;
  // UTF-8 needs at most 3 bytes per UTF-16 unit; its length is at least n.
  const reserve = varintSize(n);
  ensure(reserve + n * 3);
  const start = pos;
  let p = pos + reserve;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      buf[p++] = c;
    } else if (c < 0x800) {
      buf[p++] = 0xc0 | (c >> 6);
      buf[p++] = 0x80 | (c & 0x3f);
    } else if ((c & 0xf800) !== 0xd800) {
      buf[p++] = 0xe0 | (c >> 12);
      buf[p++] = 0x80 | ((c >> 6) & 0x3f);
      buf[p++] = 0x80 | (c & 0x3f);
    } else {
      const d = i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (c < 0xdc00 && (d & 0xfc00) === 0xdc00) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        buf[p++] = 0xf0 | (c >> 18);
        buf[p++] = 0x80 | ((c >> 12) & 0x3f);
        buf[p++] = 0x80 | ((c >> 6) & 0x3f);
        buf[p++] = 0x80 | (c & 0x3f);
      } else {
        buf[p++] = 0xef;
        buf[p++] = 0xbf;
        buf[p++] = 0xbd;
      }
    }
  }
  pos = p;
  endLength(start, reserve);
}

/** Bytes written so far since `resetWriter()`. */
export function writerPosition(): number {
  return pos;
}

/** Drops everything written after `p` (a position taken before). */
export function rewind(p: number): void {
  if (p >= 0 && p <= pos) pos = p;
}

/** A copy of the bytes written at [start, end). */
export function copyOut(start: number, end: number): Uint8Array {
  return buf.slice(start, end);
}

/**
 * Writes the ASCII string `s` (every char < 0x80, caller's promise) with its
 * length prefix; for hex and dotted forms the hot paths build themselves.
 */
export function writeAsciiBytes(s: string): void {
  const n = s.length;
  ensure(n + 5);
  writeVarint32(n);
  for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i);
}

/**
 * Rewrites the bytes after `base` as the ranges [starts[i], ends[i]) in the given
 * order (each range lies after `base`); used to reorder length-delimited
 * entries already written.
 */
export function moveRanges(
  base: number,
  order: readonly number[],
  starts: readonly number[],
  ends: readonly number[],
): void {
  const copy = buf.slice(base, pos);
  let p = base;
  for (const i of order) {
    const s = (starts[i] as number) - base;
    const e = (ends[i] as number) - base;
    buf.set(copy.subarray(s, e), p);
    p += e - s;
  }
  pos = p;
}

const HEX_DIGITS = new TextEncoder().encode("0123456789abcdef");

/** Writes the 6 bytes at `b[o..o+6)` as the length-prefixed string "aa:bb:cc:dd:ee:ff". */
export function writeMacString(b: Uint8Array, o: number): void {
  ensure(18);
  buf[pos++] = 17;
  for (let i = 0; i < 6; i++) {
    const v = b[o + i] ?? 0;
    if (i > 0) buf[pos++] = 0x3a;
    buf[pos++] = HEX_DIGITS[v >> 4] ?? 0;
    buf[pos++] = HEX_DIGITS[v & 15] ?? 0;
  }
}
