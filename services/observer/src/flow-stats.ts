/**
 * Bytes and packets per connection from the collectors' flow records, in time buckets.
 *
 * Every record counts twice in the bucket of its last packet: under (source, destination,
 * protocol, destination port) and under (source, destination, protocol, source port), so
 * both directions of a connection are found by the server's port. Sums are kept per node
 * and a query takes the largest node's sum per key (sender and receiver nodes report the
 * same packets). Memory is bounded by an entry cap: a new entry over the cap evicts the
 * oldest bucket (counted, and the time it covered is reported); when only the record's
 * own bucket is left the record is dropped and counted. Buckets older than the retention
 * expire.
 */

/** Which port of the record a sum is keyed by (values of periscope.flowstats.v1.PortSide). */
export const PORT_SIDE = { destination: 1, source: 2 } as const;
/** {@link PORT_SIDE} values. */
export type PortSideValue = (typeof PORT_SIDE)[keyof typeof PORT_SIDE];

/** One flow record as the aggregator needs it. */
export interface StatRecord {
  readonly node: string;
  /** Canonical address text. */
  readonly src: string;
  readonly dst: string;
  readonly protocol: number;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly bytes: bigint;
  readonly packets: bigint;
  /** Wall-clock ms of the first and last packet. */
  readonly firstMs: number;
  readonly lastMs: number;
}

/** A sum of records of one key and node. */
export interface StatSum {
  /** Source, destination, protocol, side and port (without the node). */
  readonly key: string;
  readonly node: string;
  readonly src: string;
  readonly dst: string;
  readonly protocol: number;
  readonly port: number;
  readonly side: PortSideValue;
  bytes: bigint;
  packets: bigint;
  records: number;
  firstMs: number;
  lastMs: number;
}

/** A query's merged entry: the largest node sum of one key. */
export interface StatEntry extends Omit<StatSum, "node" | "key"> {
  nodes: number;
}

interface Bucket {
  readonly startMs: number;
  readonly sums: Map<string, StatSum>;
  collectorLostPackets: bigint;
  collectorDroppedRecords: bigint;
  dropped: number;
  malformed: number;
}

/** Losses summed over a window. */
export interface StatLoss {
  collectorLostPackets: bigint;
  collectorDroppedRecords: bigint;
  dropped: number;
  malformed: number;
  /** Sums before this time are incomplete (evicted buckets); undefined when none in the window. */
  evictedUntilMs?: number;
}

/** Result of {@link FlowStats.query}. */
export interface StatQueryResult {
  /** Largest first by bytes, then packets. */
  readonly entries: StatEntry[];
  readonly coveredSinceMs: number;
  readonly coveredUntilMs: number;
  readonly loss: StatLoss;
}

/** Options of {@link FlowStats}. */
export interface FlowStatsOptions {
  /** Bucket width, ms (default 10 s). */
  bucketMs?: number;
  /** Buckets older than this expire, ms (default 1 hour). */
  retentionMs?: number;
  /** Entries kept at most over all buckets (default 100,000). */
  maxEntries?: number;
}

/** Entries a query reads between two turns of the event loop. */
export const QUERY_SLICE = 1_000;

/** What {@link FlowStats.add} did with a record. */
export type AddOutcome = "counted" | "dropped" | "expired";

/** Running counters of the aggregator. */
export interface FlowStatsCounters {
  records: number;
  dropped: number;
  expired: number;
  evictedBuckets: number;
  evictedEntries: number;
}

/** Time-bucketed sums with an entry cap. */
export class FlowStats {
  readonly bucketMs: number;
  readonly retentionMs: number;
  readonly maxEntries: number;
  readonly counters: FlowStatsCounters = {
    records: 0,
    dropped: 0,
    expired: 0,
    evictedBuckets: 0,
    evictedEntries: 0,
  };
  readonly #buckets = new Map<number, Bucket>();
  #entries = 0;
  /** End of the newest bucket evicted for room (not expired), -Infinity before any. */
  #evictedUntilMs = Number.NEGATIVE_INFINITY;
  /** No bucket can expire before this time. */
  #nextExpiryMs = Number.NEGATIVE_INFINITY;

  constructor(opts: FlowStatsOptions = {}) {
    this.bucketMs = opts.bucketMs ?? 10_000;
    this.retentionMs = opts.retentionMs ?? 3_600_000;
    this.maxEntries = opts.maxEntries ?? 100_000;
    if (!(this.bucketMs > 0) || !(this.retentionMs >= this.bucketMs) || !(this.maxEntries >= 2))
      throw new Error("flow stats: bucketMs > 0, retentionMs >= bucketMs, maxEntries >= 2");
  }

  /** Entries held now. */
  get entries(): number {
    return this.#entries;
  }

  /** Buckets held now. */
  get buckets(): number {
    return this.#buckets.size;
  }

  #start(ms: number): number {
    return Math.floor(ms / this.bucketMs) * this.bucketMs;
  }

  #bucket(ms: number): Bucket {
    const start = this.#start(ms);
    let b = this.#buckets.get(start);
    if (b === undefined) {
      b = {
        startMs: start,
        sums: new Map(),
        collectorLostPackets: 0n,
        collectorDroppedRecords: 0n,
        dropped: 0,
        malformed: 0,
      };
      this.#buckets.set(start, b);
      this.#nextExpiryMs = Math.min(this.#nextExpiryMs, start + this.bucketMs + this.retentionMs);
    }
    return b;
  }

  /** Adds one record at wall-clock `nowMs`. */
  add(r: StatRecord, nowMs = Date.now()): AddOutcome {
    this.expire(nowMs);
    if (r.lastMs < nowMs - this.retentionMs) {
      this.counters.expired++;
      return "expired";
    }
    const b = this.#bucket(r.lastMs);
    const base = `${r.src}|${r.dst}|${r.protocol}|`;
    const keys = [
      `${base}${PORT_SIDE.destination}|${r.dstPort}`,
      `${base}${PORT_SIDE.source}|${r.srcPort}`,
    ] as const;
    const ids = [`${keys[0]}|${r.node}`, `${keys[1]}|${r.node}`] as const;
    const needed = (b.sums.has(ids[0]) ? 0 : 1) + (b.sums.has(ids[1]) ? 0 : 1);
    while (this.#entries + needed > this.maxEntries) {
      if (!this.#evictOldest(b.startMs)) {
        b.dropped++;
        this.counters.dropped++;
        return "dropped";
      }
    }
    for (const [i, side] of [PORT_SIDE.destination, PORT_SIDE.source].entries()) {
      const id = ids[i] as string;
      const s = b.sums.get(id);
      if (s === undefined) {
        b.sums.set(id, {
          key: keys[i] as string,
          node: r.node,
          src: r.src,
          dst: r.dst,
          protocol: r.protocol,
          port: side === PORT_SIDE.destination ? r.dstPort : r.srcPort,
          side,
          bytes: r.bytes,
          packets: r.packets,
          records: 1,
          firstMs: r.firstMs,
          lastMs: r.lastMs,
        });
        this.#entries++;
      } else {
        s.bytes += r.bytes;
        s.packets += r.packets;
        s.records++;
        s.firstMs = Math.min(s.firstMs, r.firstMs);
        s.lastMs = Math.max(s.lastMs, r.lastMs);
      }
    }
    this.counters.records++;
    return "counted";
  }

  /** Evicts the oldest bucket other than `keepStart`; false when there is none. */
  #evictOldest(keepStart: number): boolean {
    let oldest: Bucket | undefined;
    for (const b of this.#buckets.values()) {
      if (b.startMs !== keepStart && b.sums.size > 0 && (!oldest || b.startMs < oldest.startMs))
        oldest = b;
    }
    if (oldest === undefined) return false;
    this.counters.evictedBuckets++;
    this.counters.evictedEntries += oldest.sums.size;
    this.#entries -= oldest.sums.size;
    oldest.sums.clear();
    this.#evictedUntilMs = Math.max(this.#evictedUntilMs, oldest.startMs + this.bucketMs);
    return true;
  }

  /** Counts what a collector reported lost, in the bucket of `nowMs`. */
  addCollectorLoss(lostPackets: bigint, droppedRecords: bigint, nowMs = Date.now()): void {
    const b = this.#bucket(nowMs);
    b.collectorLostPackets += lostPackets;
    b.collectorDroppedRecords += droppedRecords;
  }

  /** Counts an undecodable message or record, in the bucket of `nowMs`. */
  addMalformed(n = 1, nowMs = Date.now()): void {
    this.#bucket(nowMs).malformed += n;
  }

  /** Drops buckets that ended before `nowMs - retention`. */
  expire(nowMs = Date.now()): void {
    if (nowMs < this.#nextExpiryMs) return;
    const cutoff = nowMs - this.retentionMs;
    let next = Number.POSITIVE_INFINITY;
    for (const [start, b] of this.#buckets) {
      if (start + this.bucketMs <= cutoff) {
        this.#entries -= b.sums.size;
        this.#buckets.delete(start);
      } else next = Math.min(next, start + this.bucketMs + this.retentionMs);
    }
    this.#nextExpiryMs = next;
  }

  /**
   * Sums over the buckets that overlap [sinceMs, untilMs) (unset: the oldest kept, now),
   * largest first; `limit` > 0 keeps only that many; `ips` (non-empty) keeps only sums
   * whose source and destination are both among them. Yields to the event loop every
   * {@link QUERY_SLICE} entries (records keep arriving meanwhile).
   */
  async query(
    opts: { sinceMs?: number; untilMs?: number; limit?: number; ips?: ReadonlySet<string> },
    nowMs = Date.now(),
  ): Promise<StatQueryResult & { omitted: number }> {
    this.expire(nowMs);
    const untilMs = opts.untilMs ?? nowMs;
    let oldest = Number.POSITIVE_INFINITY;
    for (const s of this.#buckets.keys()) oldest = Math.min(oldest, s);
    let since = this.#start(opts.sinceMs ?? Math.min(oldest, untilMs));
    // Nothing older is kept: the window starts at the oldest bucket.
    if (since < oldest && oldest < untilMs) since = oldest;
    const until = Math.ceil(untilMs / this.bucketMs) * this.bucketMs;
    const merged = new Map<string, StatEntry>();
    const nodeSums = new Map<string, StatSum>();
    const ips = opts.ips !== undefined && opts.ips.size > 0 ? opts.ips : undefined;
    const loss: StatLoss = {
      collectorLostPackets: 0n,
      collectorDroppedRecords: 0n,
      dropped: 0,
      malformed: 0,
    };
    let visited = 0;
    for (const b of [...this.#buckets.values()]) {
      if (b.startMs < since || b.startMs >= until) continue;
      loss.collectorLostPackets += b.collectorLostPackets;
      loss.collectorDroppedRecords += b.collectorDroppedRecords;
      loss.dropped += b.dropped;
      loss.malformed += b.malformed;
      // per key: node → its sum over the window
      for (const [id, s] of b.sums) {
        if (++visited % QUERY_SLICE === 0) await new Promise((r) => setImmediate(r));
        if (ips !== undefined && !(ips.has(s.src) && ips.has(s.dst))) continue;
        const n = nodeSums.get(id);
        if (n === undefined) nodeSums.set(id, { ...s });
        else {
          n.bytes += s.bytes;
          n.packets += s.packets;
          n.records += s.records;
          n.firstMs = Math.min(n.firstMs, s.firstMs);
          n.lastMs = Math.max(n.lastMs, s.lastMs);
        }
      }
    }
    for (const n of nodeSums.values()) {
      if (++visited % QUERY_SLICE === 0) await new Promise((r) => setImmediate(r));
      const e = merged.get(n.key);
      if (e === undefined) {
        const { node: _, key: __, ...rest } = n;
        merged.set(n.key, { ...rest, nodes: 1 });
        continue;
      }
      e.nodes++;
      e.records += n.records;
      e.firstMs = Math.min(e.firstMs, n.firstMs);
      e.lastMs = Math.max(e.lastMs, n.lastMs);
      if (n.bytes > e.bytes || (n.bytes === e.bytes && n.packets > e.packets)) {
        e.bytes = n.bytes;
        e.packets = n.packets;
      }
    }
    if (this.#evictedUntilMs > since) loss.evictedUntilMs = Math.min(this.#evictedUntilMs, until);
    // Number() keeps the order exact below 2^53 bytes; bigint comparisons are slower
    const entries = [...merged.values()].sort(
      (a, b) => Number(b.bytes) - Number(a.bytes) || Number(b.packets) - Number(a.packets),
    );
    const limit = opts.limit ?? 0;
    const omitted = limit > 0 ? Math.max(0, entries.length - limit) : 0;
    return {
      entries: omitted > 0 ? entries.slice(0, limit) : entries,
      coveredSinceMs: since,
      coveredUntilMs: until,
      loss,
      omitted,
    };
  }
}
