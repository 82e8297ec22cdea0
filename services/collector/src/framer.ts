import type { RawFrame } from "@periscope/proto";
import { createRawFrame, MalformedRecordError, readTraceFlowHash } from "@periscope/wire";
import type { FramerClock } from "./clock.ts";

/**
 * Takes a sealed frame. Returns false when it cannot take it (publish queue full);
 * the framer then counts the frame's records as collector loss and keeps its loss
 * counters pending, and the partition's seq is not advanced, so seq gaps only ever
 * mean loss after the collector.
 */
export type FrameSink = (frame: RawFrame) => boolean;

/** Framer settings; see CollectorConfig for the meaning of the limits. */
export interface FramerOptions {
  readonly nodeName: string;
  /** Identifies this collector run; seq restarts at 1 with a new boot id. */
  readonly bootId: string;
  readonly partitions: number;
  readonly maxRecords: number;
  readonly maxDelayMs: number;
  readonly clock: FramerClock;
  readonly sink: FrameSink;
}

interface Batch {
  records: Uint8Array[];
  /** monotonicMs() when the batch got its first record (or, on partition 0, pending loss). */
  openedAtMs: number | undefined;
}

/**
 * Partition of a record: flow_hash % partitions for trace records, 0 for anything
 * else or anything too short to hold a flow hash (the enricher reports those).
 * This is the only decoding the collector does.
 */
export function partitionOf(record: Uint8Array, partitions: number): number {
  if (partitions <= 1) return 0;
  try {
    return readTraceFlowHash(record) % partitions;
  } catch (err) {
    if (err instanceof MalformedRecordError) return 0;
    throw err;
  }
}

/** Records a frame accounts for: its records plus the losses it reports. */
export function frameRecords(frame: RawFrame): bigint {
  return BigInt(frame.records.length) + frame.kernelLost + frame.collectorLost;
}

/**
 * Batches raw kernel records into per-partition RawFrames. A frame is sealed when it
 * holds maxRecords records or maxDelayMs after it was opened (checked by tick()).
 * Loss counts are reported on partition 0; loss with no records still yields a frame.
 */
export class Framer {
  readonly #opts: FramerOptions;
  readonly #batches: Batch[];
  /** Next seq per partition; starts at 1. */
  readonly #seqs: bigint[];
  /** Records plus reported losses in the accepted frames of each partition so far. */
  readonly #recordsBefore: bigint[];
  #kernelLost = 0n;
  #collectorLost = 0n;

  constructor(opts: FramerOptions) {
    if (!Number.isInteger(opts.partitions) || opts.partitions < 1)
      throw new RangeError(`framer: partitions must be ≥ 1, got ${opts.partitions}`);
    if (opts.maxRecords < 1) throw new RangeError("framer: maxRecords must be ≥ 1");
    this.#opts = opts;
    this.#batches = Array.from({ length: opts.partitions }, () => ({
      records: [],
      openedAtMs: undefined,
    }));
    this.#seqs = Array.from({ length: opts.partitions }, () => 1n);
    this.#recordsBefore = Array.from({ length: opts.partitions }, () => 0n);
  }

  /** Adds one record (kept by reference); seals its partition's frame when full. */
  add(record: Uint8Array): void {
    const p = partitionOf(record, this.#opts.partitions);
    const batch = this.#batch(p);
    if (batch.openedAtMs === undefined) batch.openedAtMs = this.#opts.clock.monotonicMs();
    batch.records.push(record);
    if (batch.records.length >= this.#opts.maxRecords) this.#seal(p);
  }

  /** Adds loss deltas (records lost in the kernel ring / in the collector) to report. */
  addLost(kernel: bigint, collector: bigint): void {
    if (kernel <= 0n && collector <= 0n) return;
    if (kernel > 0n) this.#kernelLost += kernel;
    if (collector > 0n) this.#collectorLost += collector;
    const batch = this.#batch(0);
    if (batch.openedAtMs === undefined) batch.openedAtMs = this.#opts.clock.monotonicMs();
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
    return this.#batches.reduce((n, b) => n + b.records.length, 0);
  }

  /** Loss counted but not yet handed out in a frame. */
  get pendingLost(): { kernel: bigint; collector: bigint } {
    return { kernel: this.#kernelLost, collector: this.#collectorLost };
  }

  #batch(p: number): Batch {
    const batch = this.#batches[p];
    if (batch === undefined) throw new RangeError(`framer: no partition ${p}`);
    return batch;
  }

  #seal(p: number): void {
    const batch = this.#batch(p);
    const { clock, sink } = this.#opts;
    const records = batch.records;
    const kernelLost = p === 0 ? this.#kernelLost : 0n;
    const collectorLost = p === 0 ? this.#collectorLost : 0n;
    batch.records = [];
    batch.openedAtMs = undefined;
    if (p === 0) {
      this.#kernelLost = 0n;
      this.#collectorLost = 0n;
    }
    const seq = this.#seqs[p] ?? 1n;
    const recordsBefore = this.#recordsBefore[p] ?? 0n;
    const frame = createRawFrame({
      nodeName: this.#opts.nodeName,
      seq,
      bootId: this.#opts.bootId,
      partition: p,
      bootToRealtimeNs: clock.bootToRealtimeNs(),
      kernelLost,
      collectorLost,
      records,
      sealedUnixNs: clock.realtimeNs(),
      recordsBefore,
    });
    if (sink(frame)) {
      this.#seqs[p] = seq + 1n;
      this.#recordsBefore[p] = recordsBefore + frameRecords(frame);
      return;
    }
    this.addLost(kernelLost, collectorLost + BigInt(records.length));
  }
}
