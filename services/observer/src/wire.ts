/** Bytes that are not a well-formed protobuf message of the expected shape. */
export class WireFormatError extends Error {
  override readonly name = "WireFormatError";
}

/** An endpoint's namespace and the cluster it is in. */
export interface EndpointNamespace {
  readonly cluster: string;
  readonly namespace: string;
}

/** Protobuf wire types the reader handles. */
export const WIRE_VARINT = 0;
const WIRE_64 = 1;
export const WIRE_LEN = 2;
const WIRE_32 = 5;
const utf8 = new TextDecoder();

/** A forward-only reader over protobuf wire format, checking every bound. */
export class WireReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint of at most 32 significant bits (tags, lengths). */
  uint32(): number {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) throw new WireFormatError("truncated varint");
      const b = this.buf[this.pos++] ?? 0;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v > 0xffffffff ? v % 2 ** 32 : v;
    }
    // Longer encodings (negative int32): consume the rest, keep the low 32 bits.
    this.skipVarint();
    return v % 2 ** 32;
  }

  /** Steps over a varint of up to 10 bytes. */
  skipVarint(): void {
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireFormatError("truncated varint");
      if ((this.buf[this.pos++] ?? 0) < 0x80) return;
    }
    throw new WireFormatError("varint longer than 10 bytes");
  }

  /** A full 64-bit varint as a signed bigint (int64 semantics). */
  varint64(): bigint {
    // Fast path: up to 7 bytes (49 bits) fit a number exactly.
    const start = this.pos;
    let v = 0;
    for (let i = 0; i < 7 && this.pos < this.end; i++) {
      const b = this.buf[this.pos++] ?? 0;
      v += (b & 0x7f) * 2 ** (7 * i);
      if (b < 0x80) return BigInt(v);
    }
    this.pos = start;
    let lo = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) throw new WireFormatError("truncated varint");
      const b = this.buf[this.pos++] ?? 0;
      lo |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asIntN(64, lo);
    }
    throw new WireFormatError("varint longer than 10 bytes");
  }

  /** End offset of a length-delimited field whose length prefix is next. */
  lenEnd(): number {
    const len = this.uint32();
    const end = this.pos + len;
    if (end > this.end) throw new WireFormatError("length-delimited field past the end");
    return end;
  }

  string(): string {
    const end = this.lenEnd();
    const s = utf8.decode(this.buf.subarray(this.pos, end));
    this.pos = end;
    return s;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.skipVarint();
        return;
      case WIRE_64:
        this.pos += 8;
        break;
      case WIRE_LEN:
        this.pos = this.lenEnd();
        return;
      case WIRE_32:
        this.pos += 4;
        break;
      default:
        throw new WireFormatError(`unsupported wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new WireFormatError("fixed-width field past the end");
  }
}

/** google.protobuf.Timestamp at [r.pos, end) → ns since the epoch. */
export function readTimestampNs(r: WireReader, end: number): bigint {
  let seconds = 0n;
  let nanos = 0;
  const sub = new WireReader(r.buf, r.pos, end);
  while (sub.pos < end) {
    const tag = sub.uint32();
    const wt = tag & 7;
    if (tag >>> 3 === 1 && wt === WIRE_VARINT) seconds = sub.varint64();
    else if (tag >>> 3 === 2 && wt === WIRE_VARINT) nanos = sub.uint32() | 0;
    else sub.skip(wt);
  }
  r.pos = end;
  return seconds * 1_000_000_000n + BigInt(nanos);
}

/** flow.Endpoint → its namespace and cluster, or undefined without a namespace. */
export function readEndpoint(r: WireReader, end: number): EndpointNamespace | undefined {
  let namespace = "";
  let cluster = "";
  const sub = new WireReader(r.buf, r.pos, end);
  while (sub.pos < end) {
    const tag = sub.uint32();
    const wt = tag & 7;
    if (tag >>> 3 === 3 && wt === WIRE_LEN) namespace = sub.string();
    else if (tag >>> 3 === 7 && wt === WIRE_LEN) cluster = sub.string();
    else sub.skip(wt);
  }
  r.pos = end;
  return namespace === "" ? undefined : { cluster, namespace };
}
