import { type Pointer, ptr, toArrayBuffer } from "bun:ffi";
import { BpfError, ERRNO } from "./errors.ts";
import { isNull, lastErrno, libc } from "./ffi.ts";
import { type RingCopyFn, ringCopyNative } from "./ring-copy.ts";

// Ring buffer layout, kernel/bpf/ringbuf.c and libbpf's ringbuf.c
// (https://docs.kernel.org/bpf/ringbuf.html): page 0 holds consumer_pos (read-write
// for us), page 1 producer_pos (read-only), then the data pages, mapped twice in a row
// so a record never wraps. Each record is an 8-byte header {u32 len, u32 pg_off}
// followed by len bytes, padded to 8. BUSY: the producer has not committed it yet;
// DISCARD: skip it.
const HDR_SIZE = 8;
const BUSY_BIT = 0x8000_0000;
const DISCARD_BIT = 0x4000_0000;
const LEN_MASK = 0x3fff_ffff;
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const SC_PAGESIZE = 30;
/** mmap's MAP_FAILED ((void *)-1) as bun:ffi hands it back. */
const MAP_FAILED = 2 ** 64 - 1;

/**
 * Takes records from {@link RingBufferReader.drainInto}. `ring` is a view of the
 * mapped ring; what it points at is only valid during the call (the space goes back to
 * the kernel afterwards): copy what you keep.
 */
export interface RecordSink {
  /** One record: `ring[offset, offset + length)`. */
  addFrom(ring: Uint8Array, offset: number, length: number): void;
  /**
   * Optional bulk form, used when present: `ring[start, end)` holds `count` whole
   * samples in the ring's layout (an 8-byte header whose first little-endian u32 is
   * the record length, the record, padding to a multiple of 8).
   */
  addRun?(ring: Uint8Array, start: number, end: number, count: number): void;
}

/** What {@link RingBufferReader.copyPacked} did. */
export interface PackedCopy {
  /** Samples copied. */
  readonly records: number;
  /** Bytes written to the destination. */
  readonly bytes: number;
  /** It stopped for lack of room (bytes or records) with more committed samples waiting. */
  readonly full: boolean;
}

interface Mapping {
  readonly addr: Pointer;
  readonly length: number;
}

function mapRing(fd: number, length: number, prot: number, offset: number): Mapping {
  const addr = libc().mmap(null, length, prot, MAP_SHARED, fd, offset);
  if (isNull(addr) || Number(addr) >= MAP_FAILED) {
    throw new BpfError("mmap(ring buffer)", lastErrno(), `fd ${fd}, ${length} bytes at ${offset}`);
  }
  return { addr, length };
}

/**
 * Reads a BPF_MAP_TYPE_RINGBUF map straight from its memory mapping, without a
 * call into C per record: records are handed out as views of the mapped ring (or
 * copies), many per call, and the consumer position is published once per call.
 * Never blocks. Not thread-safe: one reader per ring, on one JS thread.
 */
export class RingBufferReader {
  readonly #mask: number;
  #consumerMap: Mapping | undefined;
  #producerMap: Mapping | undefined;
  /** consumer_pos, written by us. */
  #consumer: BigUint64Array;
  /** producer_pos as two u32 (little endian), written by the kernel. */
  #producer: Uint32Array;
  /** The data pages, twice: bytes and 32-bit words (headers are 8-aligned). */
  #bytes: Uint8Array;
  #words: Uint32Array;
  readonly #native: RingCopyFn | undefined;
  readonly #out = new BigUint64Array(3);
  readonly #page: number;

  /**
   * Maps the ring of map `mapFd`, whose size (`max_entries`) is `sizeBytes`: a power
   * of two and a multiple of the page size.
   * @throws BpfError when mmap fails.
   */
  constructor(mapFd: number, sizeBytes: number) {
    const page = Number(libc().sysconf(SC_PAGESIZE));
    if (!(page > 0)) throw new BpfError("sysconf(_SC_PAGESIZE)", lastErrno());
    if ((sizeBytes & (sizeBytes - 1)) !== 0 || sizeBytes % page !== 0) {
      throw new RangeError(`ring buffer size must be a power of two pages, got ${sizeBytes}`);
    }
    this.#mask = sizeBytes - 1;
    this.#page = page;
    this.#native = ringCopyNative();
    const consumerMap = mapRing(mapFd, page, PROT_READ | PROT_WRITE, 0);
    let producerMap: Mapping;
    try {
      producerMap = mapRing(mapFd, page + 2 * sizeBytes, PROT_READ, page);
    } catch (err) {
      libc().munmap(consumerMap.addr, consumerMap.length);
      throw err;
    }
    this.#consumerMap = consumerMap;
    this.#producerMap = producerMap;
    this.#consumer = new BigUint64Array(toArrayBuffer(consumerMap.addr, 0, page));
    const prod = toArrayBuffer(producerMap.addr, 0, producerMap.length);
    this.#producer = new Uint32Array(prod, 0, 2);
    this.#bytes = new Uint8Array(prod, page, 2 * sizeBytes);
    this.#words = new Uint32Array(prod, page, (2 * sizeBytes) / 4);
  }

  /** Bytes waiting in the ring (committed or not), 0 when closed. */
  get pending(): number {
    if (this.#consumerMap === undefined) return 0;
    return this.#producerPos() - Number(Atomics.load(this.#consumer, 0));
  }

  #producerPos(): number {
    // Plain loads only: the producer page and the data pages are mapped read-only, and
    // JSC's optimizing JIT may compile Atomics.load to a locked read-modify-write, which
    // faults there. x86 does not reorder loads with loads, so reading producer_pos before
    // a record header is enough ordering (libbpf uses smp_load_acquire, a plain mov on x86).
    // Positions stay far below 2^53; the high word changes only every 4 GiB written.
    const p = this.#producer;
    const hi = p[1] as number;
    const lo = p[0] as number;
    const hi2 = p[1] as number;
    return hi === hi2 ? hi * 2 ** 32 + lo : hi2 * 2 ** 32;
  }

  /**
   * Hands up to `max` committed records to `sink` as views of the ring, in ring order,
   * and returns how many: runs of consecutive records through `sink.addRun` when it has
   * one (one call per run), else one `addFrom` per record. Stops at a record the
   * producer has not committed yet. The consumer position moves past every record
   * handed out (and discarded ones), also when `sink` throws: what it was given counts
   * as consumed and the error is rethrown.
   */
  drainInto(sink: RecordSink, max = Number.POSITIVE_INFINITY): number {
    if (this.#consumerMap === undefined) {
      throw new BpfError("ring buffer drain", ERRNO.EBADF, "ring buffer is closed");
    }
    if (max <= 0) return 0;
    const words = this.#words;
    const bytes = this.#bytes;
    const bulk = sink.addRun !== undefined;
    let cons = Number(Atomics.load(this.#consumer, 0));
    const prod = this.#producerPos();
    // Offsets run past the ring's end into its second mapping: never more than one
    // ring size is pending, so [start, pos) stays inside the two mappings.
    let pos = cons & this.#mask;
    let runStart = pos;
    let runCount = 0;
    let n = 0;
    try {
      while (cons < prod && n < max) {
        const len = words[pos >>> 2] as number;
        if ((len & BUSY_BIT) !== 0) break;
        const size = len & LEN_MASK;
        const step = (size + HDR_SIZE + 7) & ~7;
        if ((len & DISCARD_BIT) !== 0) {
          if (runCount > 0) sink.addRun?.(bytes, runStart, pos, runCount);
          runCount = 0;
          pos += step;
          cons += step;
          runStart = pos;
          continue;
        }
        n++;
        const at = pos;
        pos += step;
        cons += step;
        if (bulk) runCount++;
        else sink.addFrom(bytes, at + HDR_SIZE, size);
      }
      if (runCount > 0) sink.addRun?.(bytes, runStart, pos, runCount);
    } finally {
      Atomics.store(this.#consumer, 0, BigInt(cons));
    }
    return n;
  }

  /** True when {@link copyPacked} runs natively (bun:ffi cc), false when in JS. */
  get nativeCopy(): boolean {
    return this.#native !== undefined;
  }

  /**
   * Copies committed samples, in their ring layout (8-byte header whose first
   * little-endian u32 is the length, the record, padding to 8 — RawFrame's
   * packed_records layout), into `dst` from `offset` on: at most `maxRecords` samples
   * and `capBytes` bytes; a sample that does not fit stays for the next call. Runs of
   * samples are copied in one piece, natively when possible. Moves the consumer
   * position past what was copied (and discarded samples). Never blocks.
   */
  copyPacked(dst: Uint8Array, offset: number, capBytes: number, maxRecords: number): PackedCopy {
    const consumer = this.#consumerMap;
    const producer = this.#producerMap;
    if (consumer === undefined || producer === undefined) {
      throw new BpfError("ring buffer drain", ERRNO.EBADF, "ring buffer is closed");
    }
    const cap = Math.max(0, Math.min(capBytes, dst.length - offset));
    if (maxRecords <= 0 || cap <= 0) return { records: 0, bytes: 0, full: true };
    const native = this.#native;
    if (native === undefined) return this.#copyPackedJs(dst, offset, cap, maxRecords);
    const out = this.#out;
    native(
      consumer.addr,
      producer.addr,
      (Number(producer.addr) + this.#page) as Pointer,
      this.#mask,
      ptr(dst, offset),
      cap,
      maxRecords,
      ptr(out),
    );
    return { records: Number(out[0]), bytes: Number(out[1]), full: out[2] !== 0n };
  }

  /** The same as native/ring-copy.c, in JS. */
  #copyPackedJs(dst: Uint8Array, offset: number, cap: number, maxRecords: number): PackedCopy {
    const words = this.#words;
    const bytes = this.#bytes;
    let cons = Number(Atomics.load(this.#consumer, 0));
    const prod = this.#producerPos();
    let pos = cons & this.#mask;
    let runStart = pos;
    let written = 0;
    let n = 0;
    let full = false;
    const flush = (end: number): void => {
      if (end > runStart) dst.set(bytes.subarray(runStart, end), offset + written);
      written += end - runStart;
    };
    while (cons < prod) {
      const len = words[pos >>> 2] as number;
      if ((len & BUSY_BIT) !== 0) break;
      const step = ((len & LEN_MASK) + HDR_SIZE + 7) & ~7;
      if ((len & DISCARD_BIT) !== 0) {
        flush(pos);
        pos += step;
        cons += step;
        runStart = pos;
        continue;
      }
      if (n >= maxRecords || written + (pos - runStart) + step > cap) {
        full = true;
        break;
      }
      pos += step;
      cons += step;
      n++;
    }
    flush(pos);
    Atomics.store(this.#consumer, 0, BigInt(cons));
    return { records: n, bytes: written, full };
  }

  /**
   * Hands up to `max` available records to `onRecord` (copies it may keep) and
   * returns how many were handed over. Never blocks. An exception thrown by
   * `onRecord` stops the drain and is rethrown; its record counts as consumed.
   */
  drain(onRecord: (bytes: Uint8Array) => void, max = Number.POSITIVE_INFINITY): number {
    return this.drainInto(
      { addFrom: (ring, offset, length) => onRecord(ring.slice(offset, offset + length)) },
      max,
    );
  }

  /** Unmaps the ring; safe to call more than once. */
  close(): void {
    const maps = [this.#consumerMap, this.#producerMap];
    this.#consumerMap = undefined;
    this.#producerMap = undefined;
    // Views of unmapped memory must never be read again: point them at nothing.
    this.#consumer = new BigUint64Array(1);
    this.#producer = new Uint32Array(2);
    this.#bytes = new Uint8Array(0);
    this.#words = new Uint32Array(0);
    for (const m of maps) if (m !== undefined) libc().munmap(m.addr, m.length);
  }
}
