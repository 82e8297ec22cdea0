import { errorReason, type Logger, RateLimitedLog } from "@periscope/telemetry";
import type { NetflowExporter } from "./exporter.ts";
import type { NetflowRecord } from "./record.ts";
import { netflowRecordProblem } from "./validate.ts";

/** Why records were dropped on their way to an exporter. */
export type NetflowDropKind =
  /** The exporter's lane was full: it could not keep up. */
  | "overflow"
  /** The exporter rejected the batch (transport error). */
  | "export-failed"
  /** The record failed validation; no exporter saw it. */
  | "invalid"
  /** Pushed after close. */
  | "closed";

/** One drop note handed to {@link NetflowExportQueueOptions.onDrop}. */
export interface NetflowDrop {
  /** Exporter whose lane dropped them; undefined for records no exporter saw. */
  readonly exporter: string | undefined;
  readonly kind: NetflowDropKind;
  readonly count: number;
  /** What went wrong, for logs and lost events. */
  readonly reason: string;
}

/** Settings of a {@link NetflowExportQueue}. */
export interface NetflowExportQueueOptions {
  readonly exporters: readonly NetflowExporter[];
  /** Records waiting per exporter before new ones are dropped; default 100 000. */
  readonly capacity?: number;
  /** Most records handed to one export call; default 1000. */
  readonly batchSize?: number;
  /** Called for every drop, synchronously (metrics, lost events). */
  readonly onDrop?: (drop: NetflowDrop) => void;
  /** Drops are summarised here at most once per `logIntervalMs`. */
  readonly log?: Logger;
  /** Default 10 000. */
  readonly logIntervalMs?: number;
}

/** Per-exporter counters of a {@link NetflowExportQueue}. */
export interface NetflowLaneStats {
  readonly exporter: string;
  /** Records waiting now. */
  readonly queued: number;
  /** Records whose export call resolved. */
  readonly exported: number;
  /** Records dropped in this lane (overflow, failed exports, pushed after close). */
  readonly dropped: number;
}

const DEFAULT_CAPACITY = 100_000;
const DEFAULT_BATCH = 1000;

/**
 * The bounded path between the flow evictor and the exporters. Each exporter has a lane
 * (a fixed-size ring) drained by one export call at a time; `push` never waits: records
 * that do not fit a lane are dropped there, counted through `onDrop` and summarised in the
 * log. This is the only place flow records are dropped on their way out.
 */
export class NetflowExportQueue {
  readonly #lanes: Lane[];
  readonly #onDrop: (drop: NetflowDrop) => void;
  readonly #dropLog: RateLimitedLog | undefined;
  #invalid = 0;
  #closed = false;

  constructor(opts: NetflowExportQueueOptions) {
    const capacity = opts.capacity ?? DEFAULT_CAPACITY;
    const batch = opts.batchSize ?? DEFAULT_BATCH;
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`export queue capacity must be a positive integer, got ${capacity}`);
    if (!Number.isInteger(batch) || batch < 1)
      throw new RangeError(`export batch size must be a positive integer, got ${batch}`);
    const names = new Set<string>();
    for (const e of opts.exporters) {
      if (names.has(e.name)) throw new Error(`two flow exporters are named "${e.name}"`);
      names.add(e.name);
    }
    this.#dropLog =
      opts.log === undefined
        ? undefined
        : new RateLimitedLog({
            log: opts.log,
            describe: (n) => `dropped ${n} flow records`,
            intervalMs: opts.logIntervalMs,
          });
    this.#onDrop = (drop) => {
      opts.onDrop?.(drop);
      this.#dropLog?.note(drop.reason, { exporter: drop.exporter, kind: drop.kind }, drop.count);
    };
    this.#lanes = opts.exporters.map((e) => new Lane(e, capacity, batch, this.#onDrop));
  }

  /** Records rejected by validation since creation. */
  get invalid(): number {
    return this.#invalid;
  }

  /** Counters per exporter. */
  stats(): NetflowLaneStats[] {
    return this.#lanes.map((l) => l.stats());
  }

  /**
   * Queues `records` for every exporter without waiting; returns how many were invalid.
   * Records that do not fit a lane are dropped and counted there.
   */
  push(records: readonly NetflowRecord[]): number {
    const valid: NetflowRecord[] = [];
    let invalid = 0;
    for (const r of records) {
      const problem = netflowRecordProblem(r);
      if (problem === undefined) {
        valid.push(r);
        continue;
      }
      invalid++;
      this.#onDrop({
        exporter: undefined,
        kind: "invalid",
        count: 1,
        reason: `invalid flow record: ${problem}`,
      });
    }
    this.#invalid += invalid;
    for (const lane of this.#lanes) lane.push(valid, this.#closed);
    return invalid;
  }

  /** Resolves when every lane is empty and no export call is running. */
  async flush(): Promise<void> {
    await Promise.all(this.#lanes.map((l) => l.idle()));
  }

  /** Stops accepting records, exports what is queued, closes the exporters. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.flush();
    this.#dropLog?.flush();
    await Promise.all(this.#lanes.map((l) => l.exporter.close()));
  }
}

/** One exporter's ring of waiting records and its pump. */
class Lane {
  readonly exporter: NetflowExporter;
  readonly #ring: (NetflowRecord | undefined)[];
  readonly #batch: number;
  readonly #onDrop: (drop: NetflowDrop) => void;
  #head = 0;
  #length = 0;
  #pumping = false;
  #exported = 0;
  #dropped = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(
    exporter: NetflowExporter,
    capacity: number,
    batch: number,
    onDrop: (drop: NetflowDrop) => void,
  ) {
    this.exporter = exporter;
    this.#ring = new Array(capacity);
    this.#batch = batch;
    this.#onDrop = onDrop;
  }

  stats(): NetflowLaneStats {
    return {
      exporter: this.exporter.name,
      queued: this.#length,
      exported: this.#exported,
      dropped: this.#dropped,
    };
  }

  push(records: readonly NetflowRecord[], closed: boolean): void {
    if (records.length === 0) return;
    if (closed) {
      this.#drop("closed", records.length, "flow export queue is closed");
      return;
    }
    const cap = this.#ring.length;
    const room = cap - this.#length;
    const take = Math.min(room, records.length);
    for (let i = 0; i < take; i++) {
      this.#ring[(this.#head + this.#length) % cap] = records[i];
      this.#length++;
    }
    if (take < records.length) {
      this.#drop(
        "overflow",
        records.length - take,
        `exporter ${this.exporter.name} is behind, its queue of ${cap} records is full`,
      );
    }
    if (!this.#pumping && this.#length > 0) void this.#pump();
  }

  idle(): Promise<void> {
    if (!this.#pumping && this.#length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    const cap = this.#ring.length;
    while (this.#length > 0) {
      const n = Math.min(this.#batch, this.#length);
      const batch: NetflowRecord[] = new Array(n);
      for (let i = 0; i < n; i++) {
        batch[i] = this.#ring[this.#head] as NetflowRecord;
        this.#ring[this.#head] = undefined;
        this.#head = (this.#head + 1) % cap;
      }
      this.#length -= n;
      try {
        await this.exporter.export(batch);
        this.#exported += n;
      } catch (err) {
        this.#drop(
          "export-failed",
          n,
          `exporter ${this.exporter.name} failed: ${errorReason(err)}`,
        );
      }
    }
    this.#pumping = false;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  #drop(kind: NetflowDropKind, count: number, reason: string): void {
    this.#dropped += count;
    this.#onDrop({ exporter: this.exporter.name, kind, count, reason });
  }
}
