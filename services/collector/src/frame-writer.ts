/**
 * Writes `periscope.raw.v1.RawFrame` wire bytes without building a message: records are
 * collected in a {@link RecordSection} in packed_records form, and sealing writes the
 * scalar fields around it. The bytes equal what protoc-gen-es' toBinary writes for the
 * same frame (framer tests check it).
 */
import { PACKED_HEADER_SIZE, packedSize } from "@periscope/wire";

/** Records lost on one CPU, for RawFrame.kernel_losses. */
export interface KernelLossCount {
  readonly cpu: number;
  readonly count: bigint;
}

/** Everything in a RawFrame but its records. */
export interface FrameHeader {
  readonly nodeName: string;
  readonly seq: bigint;
  readonly bootId: string;
  readonly partition: number;
  readonly bootToRealtimeNs: bigint;
  readonly kernelLost: bigint;
  readonly collectorLost: bigint;
  readonly sealedUnixNs: bigint;
  readonly recordsBefore: bigint;
  readonly kernelLosses: readonly KernelLossCount[];
}

const HDR = PACKED_HEADER_SIZE;

/**
 * Records of one open frame in packed_records form (the BPF ring buffer's sample
 * layout), in a buffer reused frame after frame. Runs of ring samples are copied in
 * one piece; single records get a header written here.
 */
export class RecordSection {
  #buf: Uint8Array;
  #pos = 0;
  #count = 0;

  constructor(initialBytes = 64 << 10) {
    this.#buf = new Uint8Array(initialBytes);
  }

  /** Records appended since the last reset. */
  get count(): number {
    return this.#count;
  }

  /** Packed bytes appended since the last reset. */
  get byteLength(): number {
    return this.#pos;
  }

  /** Appends `src[offset, offset + length)` as one record. */
  append(src: Uint8Array, offset: number, length: number): void {
    const size = packedSize(length);
    this.#reserve(size);
    const buf = this.#buf;
    const p = this.#pos;
    buf[p] = length & 0xff;
    buf[p + 1] = (length >>> 8) & 0xff;
    buf[p + 2] = (length >>> 16) & 0xff;
    buf[p + 3] = (length >>> 24) & 0xff;
    buf.fill(0, p + 4, p + HDR);
    buf.set(src.subarray(offset, offset + length), p + HDR);
    buf.fill(0, p + HDR + length, p + size);
    this.#pos = p + size;
    this.#count++;
  }

  /**
   * Appends `src[start, end)`, which holds `count` whole records already in packed
   * form (ring buffer samples: header with the length in its low 30 bits, record,
   * padding to 8), in one copy.
   */
  appendRun(src: Uint8Array, start: number, end: number, count: number): void {
    this.#reserve(end - start);
    this.#buf.set(src.subarray(start, end), this.#pos);
    this.#pos += end - start;
    this.#count += count;
  }

  /**
   * Room for `bytes` more bytes after the records, to be filled by a copy from outside
   * and then {@link commit}ted: the buffer and the offset to write at.
   */
  space(bytes: number): { buf: Uint8Array; offset: number } {
    this.#reserve(bytes);
    return { buf: this.#buf, offset: this.#pos };
  }

  /** Takes `bytes` bytes holding `count` packed records written into {@link space}. */
  commit(bytes: number, count: number): void {
    if (this.#pos + bytes > this.#buf.length)
      throw new RangeError("record section: commit past its buffer");
    this.#pos += bytes;
    this.#count += count;
  }

  /** Forgets the records (keeps the buffer). */
  reset(): void {
    this.#pos = 0;
    this.#count = 0;
  }

  /** The appended bytes (a view, valid until the next append or reset). */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.#pos);
  }

  #reserve(bytes: number): void {
    const need = this.#pos + bytes;
    if (need <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
  }
}

/** A growable byte writer for the few scalar fields of a frame. */
class Scratch {
  bytes: number[] = [];

  varint(value: bigint): void {
    // int64 fields encode negative values as their 64-bit two's complement.
    let v = BigInt.asUintN(64, value);
    while (v > 0x7fn) {
      this.bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }

  tag(field: number, wireType: number): void {
    this.varint(BigInt((field << 3) | wireType));
  }

  /** A varint field, left out when 0 (proto3 implicit presence). */
  field(field: number, value: bigint): void {
    if (value === 0n) return;
    this.tag(field, 0);
    this.varint(value);
  }

  string(field: number, text: string): void {
    if (text === "") return;
    const utf8 = new TextEncoder().encode(text);
    this.tag(field, 2);
    this.varint(BigInt(utf8.length));
    for (const b of utf8) this.bytes.push(b);
  }

  lossEntry(loss: KernelLossCount): void {
    const inner = new Scratch();
    inner.field(1, BigInt(loss.cpu));
    inner.field(2, loss.count);
    this.tag(11, 2);
    this.varint(BigInt(inner.bytes.length));
    for (const b of inner.bytes) this.bytes.push(b);
  }
}

/**
 * Encodes a frame: the scalar fields in field order around packed_records (`records`,
 * holding `count` records).
 */
export function writeFrame(header: FrameHeader, records: Uint8Array, count: number): Uint8Array {
  const head = new Scratch();
  head.string(1, header.nodeName);
  head.field(2, header.seq);
  head.string(3, header.bootId);
  head.field(4, BigInt(header.partition));
  head.field(5, header.bootToRealtimeNs);
  head.field(6, header.kernelLost);
  head.field(7, header.collectorLost);
  head.field(9, header.sealedUnixNs);
  head.field(10, header.recordsBefore);
  for (const loss of header.kernelLosses) head.lossEntry(loss);
  if (records.length > 0) {
    head.tag(12, 2);
    head.varint(BigInt(records.length));
  }
  const tail = new Scratch();
  tail.field(13, BigInt(count));
  const out = new Uint8Array(head.bytes.length + records.length + tail.bytes.length);
  out.set(head.bytes, 0);
  out.set(records, head.bytes.length);
  out.set(tail.bytes, head.bytes.length + records.length);
  return out;
}
