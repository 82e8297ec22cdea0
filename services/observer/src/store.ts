import type { FlowFilter } from "@periscope/proto";
import { FlowColumns } from "./columns.ts";
import type { StoredEvent } from "./event.ts";
import { compilePrefilter } from "./prefilter.ts";
import { Ring } from "./ring.ts";
import type { StreamHistory } from "./store-query.ts";

/** What the observer knows about one node that published on the bus. */
export interface NodeInfo {
  readonly name: string;
  /** Wall-clock ms of the first and the latest batch from this node. */
  readonly firstSeenMs: number;
  readonly lastSeenMs: number;
  /** Flows received from this node since the observer started. */
  readonly seenFlows: number;
  /** Flows from this node still in the ring (not yet overwritten). */
  readonly numFlows: number;
}

/** How long a namespace stays listed after its last flow, ms (Hubble's one hour). */
export const NAMESPACE_TTL_MS = 60 * 60_000;

/** Options for {@link FlowStore}. */
export interface FlowStoreOptions {
  /** Ring capacity (max_flows). */
  maxFlows: number;
  /** A node that sent nothing for this long counts as unavailable. Default 5 minutes. */
  nodeStaleMs?: number;
  /** Window of the flows/s rate in seconds. Default 60 (like Hubble). */
  rateWindowSec?: number;
  /** Clock in ms; tests pass their own. */
  now?: () => number;
}

/**
 * The observer's in-memory state: the ring of recent events, counters for ServerStatus,
 * the nodes seen on the bus and the namespaces seen in flows.
 */
export class FlowStore {
  readonly ring: Ring<StoredEvent>;
  /** A few fields of every flow in the ring, per slot, for prefiltering queries. */
  readonly columns: FlowColumns;
  /** Wall-clock ms when the store was created (the observer's start). */
  readonly startedMs: number;
  readonly #now: () => number;
  readonly #nodeStaleMs: number;
  readonly #rateWindowSec: number;
  /** Flow counts per wall-clock second, keyed by the second. */
  readonly #perSecond = new Map<number, number>();
  readonly #nodes = new Map<string, { -readonly [K in keyof NodeInfo]: NodeInfo[K] }>();
  /** "cluster/namespace" → the pair and when a flow last named it. */
  readonly #namespaces = new Map<
    string,
    { cluster: string; namespace: string; lastSeenMs: number }
  >();
  /** Node name of each flow in the ring, per slot, for per-node num_flows. */
  readonly #slotNode: (string | undefined)[];
  #seenFlows = 0;
  #evictedSeq = 0;
  #evictedMaxNs = -1n;
  #history: StreamHistory | undefined;

  constructor(opts: FlowStoreOptions) {
    this.ring = new Ring<StoredEvent>(opts.maxFlows);
    this.columns = new FlowColumns(opts.maxFlows);
    this.#slotNode = new Array<string | undefined>(opts.maxFlows).fill(undefined);
    this.#now = opts.now ?? Date.now;
    this.#nodeStaleMs = opts.nodeStaleMs ?? 5 * 60_000;
    this.#rateWindowSec = opts.rateWindowSec ?? 60;
    this.startedMs = this.#now();
  }

  /** Flows (not lost events) stored since start, including overwritten ones. */
  get seenFlows(): number {
    return this.#seenFlows;
  }

  /**
   * Stores one event received from `node` (the batch's publisher). Flows update the
   * counters, the node's record and the namespace list; lost events are stored as is.
   * `seenMs` is when it was seen (default now); history replayed at start passes the
   * event's own time, so old nodes and namespaces do not look current.
   */
  add(ev: StoredEvent, node?: string, seenMs?: number): void {
    const full = this.ring.length === this.ring.capacity;
    const slot = this.ring.write(ev) % this.ring.capacity;
    if (full) this.#evict(slot);
    this.columns.set(slot, ev);
    const nowMs = seenMs !== undefined && seenMs > 0 ? seenMs : this.#now();
    const name = ev.nodeName || (node ?? "");
    const isFlow = ev.kind === "flow";
    const evicted = this.#slotNode[slot];
    if (evicted !== undefined) {
      const old = this.#nodes.get(evicted);
      if (old) old.numFlows--;
    }
    this.#slotNode[slot] = isFlow ? name : undefined;
    const rec = this.#nodes.get(name);
    if (rec !== undefined && nowMs < rec.lastSeenMs) {
      // An older event (replayed history) keeps the latest sighting.
      rec.firstSeenMs = Math.min(rec.firstSeenMs, nowMs);
      if (isFlow) {
        rec.seenFlows++;
        rec.numFlows++;
      }
    } else if (rec === undefined) {
      this.#nodes.set(name, {
        name,
        firstSeenMs: nowMs,
        lastSeenMs: nowMs,
        seenFlows: isFlow ? 1 : 0,
        numFlows: isFlow ? 1 : 0,
      });
    } else {
      rec.lastSeenMs = nowMs;
      if (isFlow) {
        rec.seenFlows++;
        rec.numFlows++;
      }
    }
    if (!isFlow) return;
    this.#seenFlows++;
    // Replayed flows older than the rate window are not part of the current rate.
    if (seenMs === undefined || nowMs > this.#now() - this.#rateWindowSec * 1000) {
      this.#countRate(nowMs);
    }
    for (const { cluster, namespace } of ev.namespaces) {
      const key = `${cluster}/${namespace}`;
      const seen = this.#namespaces.get(key);
      if (seen) seen.lastSeenMs = Math.max(seen.lastSeenMs, nowMs);
      else this.#namespaces.set(key, { cluster, namespace, lastSeenMs: nowMs });
    }
  }

  #countRate(nowMs: number): void {
    const sec = Math.floor(nowMs / 1000);
    this.#perSecond.set(sec, (this.#perSecond.get(sec) ?? 0) + 1);
    if (this.#perSecond.size > this.#rateWindowSec + 1) this.#prune(sec);
  }

  #prune(nowSec: number): void {
    for (const sec of this.#perSecond.keys()) {
      if (sec <= nowSec - this.#rateWindowSec) this.#perSecond.delete(sec);
    }
  }

  /**
   * Flows per second over the last window (default 60 s), or over the time since start
   * when the observer is younger than the window.
   */
  flowsRate(): number {
    const nowMs = this.#now();
    const nowSec = Math.floor(nowMs / 1000);
    this.#prune(nowSec);
    let total = 0;
    for (const count of this.#perSecond.values()) total += count;
    const spanSec = Math.min(this.#rateWindowSec, Math.max(1, (nowMs - this.startedMs) / 1000));
    return total / spanSec;
  }

  /** Notes what the event in `slot`, about to be overwritten, leaves behind. */
  #evict(slot: number): void {
    this.#evictedSeq = Math.max(this.#evictedSeq, this.columns.streamSeq[slot] ?? 0);
    this.#evictedNs(this.columns.time[slot] ?? 0);
  }

  #evictedNs(ms: number): void {
    // ms precision is enough for "may an overwritten event be at or after since?"
    const ns = BigInt(Math.ceil(ms)) * 1_000_000n;
    if (ns > this.#evictedMaxNs) this.#evictedMaxNs = ns;
  }

  /**
   * The highest stream sequence among events overwritten in the ring (0: none yet). Every
   * stored event of a later stream message is still in the ring.
   */
  get evictedStreamSeq(): number {
    return this.#evictedSeq;
  }

  /** Latest time of an overwritten event, ns (rounded up to the ms); -1 when none was. */
  get evictedMaxNs(): bigint {
    return this.#evictedMaxNs;
  }

  /** Where history older than the ring is read from (set by ingest; absent in tests). */
  get history(): StreamHistory | undefined {
    return this.#history;
  }

  /** Connects the stream the ring is fed from, for `since` older than the ring. */
  attachHistory(history: StreamHistory): void {
    this.#history = history;
  }

  /**
   * A test on ring indexes that is false only for flows the filters surely reject, read
   * from the columns without decoding; undefined when it could not rule anything out.
   * The filters must have compiled (the exact matcher validates them).
   */
  prefilter(
    whitelist: readonly FlowFilter[],
    blacklist: readonly FlowFilter[],
  ): ((index: number) => boolean) | undefined {
    const test = compilePrefilter(this.columns, whitelist, blacklist);
    if (test === undefined) return undefined;
    const cap = this.ring.capacity;
    return (index) => test(index % cap);
  }

  /** Milliseconds since the store was created. */
  uptimeMs(): number {
    return this.#now() - this.startedMs;
  }

  /** Nodes seen on the bus, split by whether they sent anything recently. */
  nodes(): { connected: NodeInfo[]; unavailable: NodeInfo[] } {
    const cutoff = this.#now() - this.#nodeStaleMs;
    const connected: NodeInfo[] = [];
    const unavailable: NodeInfo[] = [];
    for (const n of [...this.#nodes.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      (n.lastSeenMs >= cutoff ? connected : unavailable).push({ ...n });
    }
    return { connected, unavailable };
  }

  /**
   * Namespaces seen in flow endpoints within the last hour (older ones are dropped, as
   * Hubble does), sorted by cluster then namespace.
   */
  namespaces(): { cluster: string; namespace: string }[] {
    const cutoff = this.#now() - NAMESPACE_TTL_MS;
    const out: { cluster: string; namespace: string }[] = [];
    for (const [key, ns] of this.#namespaces) {
      if (ns.lastSeenMs < cutoff) this.#namespaces.delete(key);
      else out.push({ cluster: ns.cluster, namespace: ns.namespace });
    }
    const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
    return out.sort((a, b) => cmp(a.cluster, b.cluster) || cmp(a.namespace, b.namespace));
  }
}
