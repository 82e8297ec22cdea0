import {
  MalformedRecordError,
  PACKED_HEADER_SIZE,
  packedSize,
  RECORD_TYPE_TRACE,
  readFlowHash,
  TRACE_FIXED_SIZE,
  TRACE_LAYOUT,
} from "@periscope/wire";
import type { FramerClock } from "./clock.ts";
import { type KernelLossCount, RecordSection, writeFrame } from "./frame-writer.ts";

export type { KernelLossCount } from "./frame-writer.ts";

/** A sealed frame: its encoded RawFrame and the numbers the publisher and metrics need. */
export interface SealedFrame {
  readonly bootId: string;
  readonly partition: number;
  readonly seq: bigint;
  readonly recordsBefore: bigint;
  /** Records in the frame. */
  readonly records: number;
  /** Kernel loss it reports (the sum of kernelLosses). */
  readonly kernelLost: bigint;
  readonly collectorLost: bigint;
  readonly kernelLosses: readonly KernelLossCount[];
  /** The `periscope.raw.v1.RawFrame` wire bytes. */
  readonly bytes: Uint8Array;
}

/**
 * Takes a sealed frame. Returns false when it cannot take it (publish queue full);
 * the framer then counts the frame's records as collector loss and keeps its loss
 * counters pending, and the partition's seq is not advanced, so seq gaps only ever
 * mean loss after the collector.
 */
export type FrameSink = (frame: SealedFrame) => boolean;

/**
 * Default bound on a frame's record bytes, below NATS' default 1 MiB max_payload. The
 * client's CPU per published byte is lowest around 128 KiB (bench/datapath.ts: ~3 ns/B
 * at 128 KiB, ~7 ns/B at 32 KiB and at 512 KiB per JetStream publish).
 */
export const DEFAULT_FRAME_MAX_BYTES = 128 << 10;

/** Framer settings; see CollectorConfig for the meaning of the limits. */
export interface FramerOptions {
  readonly nodeName: string;
  /** Identifies this collector run; seq restarts at 1 with a new boot id. */
  readonly bootId: string;
  readonly partitions: number;
  readonly maxRecords: number;
  readonly maxDelayMs: number;
  /** Record bytes per frame at most (a single larger record still gets a frame). Default 128 KiB. */
  readonly maxBytes?: number;
  readonly clock: FramerClock;
  readonly sink: FrameSink;
}

interface Batch {
  readonly records: RecordSection;
  /** monotonicMs() when the batch got its first record (or, on partition 0, pending loss). */
  openedAtMs: number | undefined;
}

const FLOW_HASH_OFFSET = TRACE_LAYOUT.fields.flow_hash.offset;

function u32At(src: Uint8Array, o: number): number {
  return (
    ((src[o] as number) |
      ((src[o + 1] as number) << 8) |
      ((src[o + 2] as number) << 16) |
      ((src[o + 3] as number) << 24)) >>>
    0
  );
}

/** Low 30 bits of a packed/ring header's length word (the ring keeps flags above). */
const LEN_MASK = 0x3fff_ffff;

function flowHashAt(src: Uint8Array, offset: number, length: number): number | undefined {
  if (length >= TRACE_FIXED_SIZE && src[offset] === RECORD_TYPE_TRACE) {
    return u32At(src, offset + FLOW_HASH_OFFSET);
  }
  // Other record types (drops) through the shared reader: rarer, not worth a fast path.
  try {
    return readFlowHash(src.subarray(offset, offset + length));
  } catch (err) {
    if (err instanceof MalformedRecordError) return undefined;
    throw err;
  }
}

/**
 * Partition of a record: flow_hash % partitions for trace records, 0 for anything
 * else or anything too short to hold a flow hash (the enricher reports those).
 * This is the only decoding the collector does.
 */
export function partitionOf(record: Uint8Array, partitions: number): number {
  if (partitions <= 1) return 0;
  return (flowHashAt(record, 0, record.length) ?? 0) % partitions;
}

/** Free space of the open frame a packed copy may fill (see Framer.packedTarget). */
export interface PackedTarget {
  readonly buf: Uint8Array;
  readonly offset: number;
  readonly roomBytes: number;
  readonly roomRecords: number;
}

/** Records a frame accounts for: its records plus the losses it reports. */
export function frameRecords(frame: SealedFrame): bigint {
  return BigInt(frame.records) + frame.kernelLost + frame.collectorLost;
}

/**
 * Batches raw kernel records into per-partition RawFrames, written straight into wire
 * form (one copy per record, no message objects). A frame is sealed when it holds
 * maxRecords records or maxBytes of them, or maxDelayMs after it was opened (checked
 * by tick()). Loss counts are reported on partition 0; loss with no records still
 * yields a frame.
 */
export class Framer {
  readonly #opts: FramerOptions;
  readonly #partitions: number;
  readonly #maxRecords: number;
  readonly #maxBytes: number;
  readonly #batches: Batch[];
  /** Next seq per partition; starts at 1. */
  readonly #seqs: bigint[];
  /** Records plus reported losses in the accepted frames of each partition so far. */
  readonly #recordsBefore: bigint[];
  /** Pending kernel loss per CPU. */
  #kernelLost = new Map<number, bigint>();
  #collectorLost = 0n;

  constructor(opts: FramerOptions) {
    if (!Number.isInteger(opts.partitions) || opts.partitions < 1)
      throw new RangeError(`framer: partitions must be ≥ 1, got ${opts.partitions}`);
    if (opts.maxRecords < 1) throw new RangeError("framer: maxRecords must be ≥ 1");
    const maxBytes = opts.maxBytes ?? DEFAULT_FRAME_MAX_BYTES;
    if (!(maxBytes >= 64)) throw new RangeError(`framer: maxBytes must be ≥ 64, got ${maxBytes}`);
    this.#opts = opts;
    this.#partitions = opts.partitions;
    this.#maxRecords = opts.maxRecords;
    this.#maxBytes = maxBytes;
    this.#batches = Array.from({ length: opts.partitions }, () => ({
      records: new RecordSection(Math.min(maxBytes + 2048, 64 << 10)),
      openedAtMs: undefined,
    }));
    this.#seqs = Array.from({ length: opts.partitions }, () => 1n);
    this.#recordsBefore = Array.from({ length: opts.partitions }, () => 0n);
  }

  /** Adds one record (copied); seals its partition's frame when full. */
  add(record: Uint8Array): void {
    this.addFrom(record, 0, record.length);
  }

  /**
   * Adds the record `src[offset, offset + length)` (copied, so `src` may be the ring
   * buffer itself); seals its partition's frame when full.
   */
  addFrom(src: Uint8Array, offset: number, length: number): void {
    let p = 0;
    if (this.#partitions > 1) p = (flowHashAt(src, offset, length) ?? 0) % this.#partitions;
    const batch = this.#batch(p);
    const section = batch.records;
    if (section.count > 0 && section.byteLength + packedSize(length) > this.#maxBytes) {
      this.#seal(p);
    }
    if (batch.openedAtMs === undefined) batch.openedAtMs = this.#opts.clock.monotonicMs();
    section.append(src, offset, length);
    if (section.count >= this.#maxRecords) this.#seal(p);
  }

  /**
   * Adds `count` records held in `src[start, end)` in packed form (ring buffer sample
   * layout): with one partition they are copied in runs as large as the open frame
   * takes, else one by one to their partitions.
   */
  addRun(src: Uint8Array, start: number, end: number, count: number): void {
    if (this.#partitions > 1) {
      let off = start;
      for (let i = 0; i < count; i++) {
        const len = u32At(src, off) & LEN_MASK;
        this.addFrom(src, off + PACKED_HEADER_SIZE, len);
        off += packedSize(len);
      }
      return;
    }
    const batch = this.#batch(0);
    const section = batch.records;
    let off = start;
    let left = count;
    while (left > 0) {
      const roomRecords = this.#maxRecords - section.count;
      const roomBytes = this.#maxBytes - section.byteLength;
      let segEnd: number;
      let n: number;
      if (left <= roomRecords && end - off <= roomBytes) {
        segEnd = end;
        n = left;
      } else {
        segEnd = off;
        n = 0;
        const most = Math.min(roomRecords, left);
        while (n < most) {
          const size = packedSize(u32At(src, segEnd) & LEN_MASK);
          if (segEnd + size - off > roomBytes && (n > 0 || section.count > 0)) break;
          segEnd += size;
          n++;
        }
      }
      if (n === 0) {
        this.#seal(0);
        continue;
      }
      if (batch.openedAtMs === undefined) batch.openedAtMs = this.#opts.clock.monotonicMs();
      section.appendRun(src, off, segEnd, n);
      off = segEnd;
      left -= n;
      if (section.count >= this.#maxRecords || section.byteLength >= this.#maxBytes) this.#seal(0);
    }
  }

  /**
   * Where a packed copy from the ring may write next (one partition only, else
   * undefined): partition 0's open frame, with the bytes and records it still takes.
   * Follow with {@link commitPacked}.
   */
  packedTarget(): PackedTarget | undefined {
    if (this.#partitions > 1) return undefined;
    const section = this.#batch(0).records;
    const roomBytes = Math.max(0, this.#maxBytes - section.byteLength);
    const { buf, offset } = section.space(roomBytes);
    return { buf, offset, roomBytes, roomRecords: this.#maxRecords - section.count };
  }

  /** Takes `count` records (`bytes` bytes) written at {@link packedTarget}; seals a full frame. */
  commitPacked(bytes: number, count: number): void {
    if (count <= 0) return;
    const batch = this.#batch(0);
    if (batch.openedAtMs === undefined) batch.openedAtMs = this.#opts.clock.monotonicMs();
    batch.records.commit(bytes, count);
    if (batch.records.count >= this.#maxRecords || batch.records.byteLength >= this.#maxBytes) {
      this.#seal(0);
    }
  }

  /** Seals partition 0's frame if it holds records (the next one did not fit). */
  sealFull(): boolean {
    if (this.#batch(0).records.count === 0) return false;
    this.#seal(0);
    return true;
  }

  /** Adds records lost in the collector, to report. */
  addLost(collector: bigint): void {
    if (collector <= 0n) return;
    this.#collectorLost += collector;
    this.#openLossFrame();
  }

  /** Adds records the kernel could not queue on `cpu`, to report. */
  addKernelLost(cpu: number, count: bigint): void {
    if (count <= 0n) return;
    this.#kernelLost.set(cpu, (this.#kernelLost.get(cpu) ?? 0n) + count);
    this.#openLossFrame();
  }

  /** Seals every frame whose delay has elapsed. */
  tick(): void {
    const now = this.#opts.clock.monotonicMs();
    for (let p = 0; p < this.#batches.length; p++) {
      const opened = this.#batch(p).openedAtMs;
      if (opened !== undefined && now - opened >= this.#opts.maxDelayMs) this.#seal(p);
    }
  }

  /** Seals every open frame now (shutdown). */
  flush(): void {
    for (let p = 0; p < this.#batches.length; p++) {
      if (this.#batch(p).openedAtMs !== undefined) this.#seal(p);
    }
  }

  /** Records held in open frames. */
  get pendingRecords(): number {
    return this.#batches.reduce((n, b) => n + b.records.count, 0);
  }

  /** Loss counted but not yet handed out in a frame. */
  get pendingLost(): { kernel: bigint; collector: bigint } {
    let kernel = 0n;
    for (const n of this.#kernelLost.values()) kernel += n;
    return { kernel, collector: this.#collectorLost };
  }

  #openLossFrame(): void {
    const batch = this.#batch(0);
    if (batch.openedAtMs === undefined) batch.openedAtMs = this.#opts.clock.monotonicMs();
  }

  #batch(p: number): Batch {
    const batch = this.#batches[p];
    if (batch === undefined) throw new RangeError(`framer: no partition ${p}`);
    return batch;
  }

  #seal(p: number): void {
    const batch = this.#batch(p);
    const { clock, sink } = this.#opts;
    const records = batch.records.count;
    let kernelLosses: KernelLossCount[] = [];
    let kernelLost = 0n;
    let collectorLost = 0n;
    if (p === 0) {
      kernelLosses = [...this.#kernelLost]
        .sort((a, b) => a[0] - b[0])
        .map(([cpu, count]) => ({ cpu, count }));
      for (const l of kernelLosses) kernelLost += l.count;
      collectorLost = this.#collectorLost;
      this.#kernelLost = new Map();
      this.#collectorLost = 0n;
    }
    const seq = this.#seqs[p] ?? 1n;
    const recordsBefore = this.#recordsBefore[p] ?? 0n;
    const bytes = writeFrame(
      {
        nodeName: this.#opts.nodeName,
        seq,
        bootId: this.#opts.bootId,
        partition: p,
        bootToRealtimeNs: clock.bootToRealtimeNs(),
        kernelLost,
        collectorLost,
        sealedUnixNs: clock.realtimeNs(),
        recordsBefore,
        kernelLosses,
      },
      batch.records.view(),
      records,
    );
    batch.records.reset();
    batch.openedAtMs = undefined;
    const frame: SealedFrame = {
      bootId: this.#opts.bootId,
      partition: p,
      seq,
      recordsBefore,
      records,
      kernelLost,
      collectorLost,
      kernelLosses,
      bytes,
    };
    if (sink(frame)) {
      this.#seqs[p] = seq + 1n;
      this.#recordsBefore[p] = recordsBefore + frameRecords(frame);
      return;
    }
    for (const l of kernelLosses) this.addKernelLost(l.cpu, l.count);
    this.addLost(collectorLost + BigInt(records));
  }
}
