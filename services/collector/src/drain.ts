import type { Framer } from "./framer.ts";
import type { PublishQueue } from "./publisher.ts";

/** Takes records as views valid only during the call (see @periscope/bpf's RecordSink). */
export interface RecordSink {
  /** One record: `src[offset, offset + length)`. */
  addFrom(src: Uint8Array, offset: number, length: number): void;
  /** `count` records in ring buffer sample layout in `src[start, end)`. */
  addRun?(src: Uint8Array, start: number, end: number, count: number): void;
}

/** The part of a loaded TraceProgram the drain loop uses. */
export interface RecordSource {
  /** Non-blocking: hands at most `max` ring buffer records to `sink`, returns how many. */
  drainInto(sink: RecordSink, max?: number): number;
  /** Records the kernel failed to queue since load, one count per CPU (index = CPU). */
  readKernelLostPerCpu(): readonly bigint[];
  /**
   * Optional bulk form: copies committed records in packed_records layout into `dst`
   * at `offset` (at most `capBytes`, `maxRecords`); `full` when it stopped for room.
   */
  copyPacked?(
    dst: Uint8Array,
    offset: number,
    capBytes: number,
    maxRecords: number,
  ): { records: number; bytes: number; full: boolean };
}

/** Drain loop settings and hooks. */
export interface DrainLoopOptions {
  readonly source: RecordSource;
  readonly framer: Framer;
  readonly queue: PublishQueue;
  /** Records taken per drain() call before yielding to the event loop (default 4096). */
  readonly batchMax?: number;
  /** Milliseconds to wait when the ring buffer was empty (default 2). */
  readonly idleMs?: number;
  /** Milliseconds between reads of the kernel loss counter (default 100). */
  readonly lostPollMs?: number;
  /** Monotonic clock in ms (default performance.now). */
  readonly monotonicMs?: () => number;
  /** Records drained by one drain() call. */
  readonly onRead?: (records: number) => void;
  /** New kernel loss on `cpu` since the previous read. */
  readonly onKernelLost?: (delta: bigint, cpu: number) => void;
  /** drain() or readKernelLost() threw; the loop goes on after an idle wait. */
  readonly onError?: (error: unknown) => void;
}

/**
 * Moves records from the kernel ring buffer into the framer and frames into NATS.
 * Each step drains without blocking, seals due frames and pumps the publish queue, then
 * yields: setImmediate while records keep coming, a short setTimeout when idle.
 */
export class DrainLoop {
  readonly #opts: DrainLoopOptions;
  readonly #batchMax: number;
  readonly #idleMs: number;
  readonly #lostPollMs: number;
  readonly #now: () => number;
  /** Kernel loss counters at the previous read, per CPU. */
  #lastKernelLost: readonly bigint[] = [];
  #lastLostPoll = Number.NEGATIVE_INFINITY;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #immediate: ReturnType<typeof setImmediate> | undefined;
  #running = false;

  constructor(opts: DrainLoopOptions) {
    this.#opts = opts;
    this.#batchMax = opts.batchMax ?? 4096;
    this.#idleMs = opts.idleMs ?? 2;
    this.#lostPollMs = opts.lostPollMs ?? 100;
    this.#now = opts.monotonicMs ?? (() => performance.now());
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.#running;
  }

  /** Starts stepping; the first kernel loss read sets the baseline (loss before start is reported too). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(false);
  }

  /**
   * Stops stepping, then drains what the ring buffer still holds, reads the loss
   * counter once more and seals every open frame into the publish queue.
   */
  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
    let drained: number;
    do drained = this.#drainOnce();
    while (drained >= this.#batchMax);
    this.#pollKernelLost(true);
    this.#opts.framer.flush();
    this.#opts.queue.pump();
  }

  /** One iteration; returns the number of records drained. Public for tests and benches. */
  step(): number {
    const n = this.#drainOnce();
    this.#pollKernelLost(false);
    this.#opts.framer.tick();
    this.#opts.queue.pump();
    return n;
  }

  /**
   * Copies up to `max` records straight into the open frame's buffer (one partition
   * and a source that copies packed runs); undefined when that path does not apply.
   */
  #drainPacked(max: number): number | undefined {
    const { source, framer } = this.#opts;
    if (source.copyPacked === undefined) return undefined;
    let total = 0;
    while (total < max) {
      const target = framer.packedTarget();
      if (target === undefined) return total > 0 ? total : undefined;
      const r = source.copyPacked(
        target.buf,
        target.offset,
        target.roomBytes,
        Math.min(target.roomRecords, max - total),
      );
      framer.commitPacked(r.bytes, r.records);
      total += r.records;
      if (!r.full || total >= max) break;
      // The next record does not fit the open frame: seal it; a record larger than an
      // empty frame goes through the one-by-one path, which gives it a frame of its own.
      if (r.records === 0 && !framer.sealFull()) {
        total += source.drainInto(framer, 1);
      }
    }
    return total;
  }

  #drainOnce(): number {
    let n = 0;
    try {
      n =
        this.#drainPacked(this.#batchMax) ??
        this.#opts.source.drainInto(this.#opts.framer, this.#batchMax);
    } catch (error) {
      this.#opts.onError?.(error);
      return 0;
    }
    if (n > 0) this.#opts.onRead?.(n);
    return n;
  }

  #pollKernelLost(force: boolean): void {
    const now = this.#now();
    if (!force && now - this.#lastLostPoll < this.#lostPollMs) return;
    this.#lastLostPoll = now;
    let counts: readonly bigint[];
    try {
      counts = this.#opts.source.readKernelLostPerCpu();
    } catch (error) {
      this.#opts.onError?.(error);
      return;
    }
    for (let cpu = 0; cpu < counts.length; cpu++) {
      const delta = (counts[cpu] ?? 0n) - (this.#lastKernelLost[cpu] ?? 0n);
      if (delta > 0n) {
        this.#opts.framer.addKernelLost(cpu, delta);
        this.#opts.onKernelLost?.(delta, cpu);
      }
    }
    this.#lastKernelLost = counts;
  }

  #schedule(busy: boolean): void {
    if (!this.#running) return;
    const run = (): void => {
      this.#timer = undefined;
      this.#immediate = undefined;
      if (!this.#running) return;
      let n = 0;
      try {
        n = this.step();
      } catch (error) {
        this.#opts.onError?.(error);
      }
      this.#schedule(n > 0);
    };
    if (busy) this.#immediate = setImmediate(run);
    else this.#timer = setTimeout(run, this.#idleMs);
  }
}
