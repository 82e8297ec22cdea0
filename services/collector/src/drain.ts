import type { Framer } from "./framer.ts";
import type { PublishQueue } from "./publisher.ts";

/** The part of a loaded TraceProgram the drain loop uses. */
export interface RecordSource {
  /** Non-blocking: hands at most `max` ring buffer records to `onRecord`, returns how many. */
  drain(onRecord: (bytes: Uint8Array) => void, max?: number): number;
  /** Records the kernel failed to queue since load, summed over CPUs. */
  readKernelLost(): bigint;
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
  /** New kernel loss since the previous read. */
  readonly onKernelLost?: (delta: bigint) => void;
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
  readonly #onRecord: (bytes: Uint8Array) => void;
  #lastKernelLost: bigint | undefined;
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
    const framer = opts.framer;
    this.#onRecord = (bytes) => framer.add(bytes);
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

  #drainOnce(): number {
    let n = 0;
    try {
      n = this.#opts.source.drain(this.#onRecord, this.#batchMax);
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
    let total: bigint;
    try {
      total = this.#opts.source.readKernelLost();
    } catch (error) {
      this.#opts.onError?.(error);
      return;
    }
    const delta = total - (this.#lastKernelLost ?? 0n);
    this.#lastKernelLost = total;
    if (delta > 0n) {
      this.#opts.framer.addLost(delta, 0n);
      this.#opts.onKernelLost?.(delta);
    }
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
