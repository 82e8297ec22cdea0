/**
 * The user-space side of the flow table: adds the deltas evicted from the kernel (and
 * the packets of a full table, counted apart as fallbacks) per flow, and decides when a
 * flow's record is due: `active` once its first packet is an active timeout old, `idle`
 * after an idle timeout without packets, `shutdown` for everything at a clean stop.
 * Times are kernel flow-table times (CLOCK_MONOTONIC, ns). Counts are only ever moved,
 * never dropped here: what a record does not carry stays in the cache. Only deltas whose
 * counters cannot be true are left out, and handed to `onImplausible` to be counted.
 */
import type { FlowDelta } from "@periscope/bpf";
import { type FlowCounters, type FlowKey, mergeFlowCounters } from "@periscope/wire";
import type { FlowDedupeMode } from "./netflow-config.ts";
import { FlowDedupe } from "./netflow-dedupe.ts";
import { implausibleCounters } from "./netflow-guard.ts";

/** Why a cached flow left the cache. */
export type FlowEviction = "idle" | "active" | "shutdown";

/** One flow's counts since its record started. */
export interface CachedFlow {
  readonly key: FlowKey;
  readonly counters: FlowCounters;
  /** Packets counted by the user-space accounter while the kernel table was full. */
  readonly fallback: boolean;
  /** Another observation point reported this 5-tuple first. */
  readonly duplicate: boolean;
}

/** A flow record due for export. */
export interface DueFlow extends CachedFlow {
  readonly reason: FlowEviction;
}

/** Cache settings. */
export interface FlowCacheOptions {
  readonly activeTimeoutNs: bigint;
  readonly idleTimeoutNs: bigint;
  readonly dedupe: FlowDedupeMode;
  /**
   * Called for a delta whose counters cannot be true (see netflow-guard.ts): it is
   * left out, so that one bad read does not spoil its flow's record.
   */
  readonly onImplausible?: (delta: FlowDelta, why: string) => void;
}

interface Entry {
  key: FlowKey;
  counters: FlowCounters;
  fallback: boolean;
  duplicate: boolean;
}

/** Flows between their kernel eviction and their record. */
export class FlowCache {
  readonly #flows = new Map<string, Entry>();
  readonly #opts: FlowCacheOptions;
  readonly #dedupe: FlowDedupe | undefined;

  constructor(opts: FlowCacheOptions) {
    this.#opts = opts;
    // A tuple stays with its first point while that point keeps seeing it, and for one
    // idle timeout after.
    this.#dedupe = opts.dedupe === "off" ? undefined : new FlowDedupe(opts.idleTimeoutNs);
  }

  /** Flows held now. */
  get size(): number {
    return this.#flows.size;
  }

  /**
   * Adds one eviction's deltas (or a batch of fallback packets). The earliest first
   * packet claims a 5-tuple for dedupe, so deltas are taken in first-seen order.
   */
  add(deltas: readonly FlowDelta[], fallback: boolean): void {
    const ordered = [...deltas].sort((a, b) =>
      a.counters.firstSeenNs < b.counters.firstSeenNs
        ? -1
        : a.counters.firstSeenNs > b.counters.firstSeenNs
          ? 1
          : 0,
    );
    for (const d of ordered) this.#addOne(d, fallback);
  }

  #addOne(d: FlowDelta, fallback: boolean): void {
    if (d.counters.packets === 0n && d.counters.dropPackets === 0n) return;
    const why = implausibleCounters(d.key.family, d.counters);
    if (why !== undefined) {
      this.#opts.onImplausible?.(d, why);
      return;
    }
    const id = fallback ? `${d.id}/f` : d.id;
    const duplicate = this.#dedupe?.isDuplicate(d.key, d.counters.lastSeenNs) ?? false;
    const cur = this.#flows.get(id);
    if (cur === undefined) {
      this.#flows.set(id, {
        key: d.key,
        counters: { ...d.counters },
        fallback,
        duplicate,
      });
      return;
    }
    mergeFlowCounters(cur.counters, d.counters);
    cur.duplicate ||= duplicate;
  }

  /** Removes and returns the flows whose record is due at `nowNs`. */
  sweep(nowNs: bigint): DueFlow[] {
    const due: DueFlow[] = [];
    const { activeTimeoutNs, idleTimeoutNs } = this.#opts;
    for (const [id, e] of this.#flows) {
      let reason: FlowEviction | undefined;
      if (nowNs - e.counters.lastSeenNs >= idleTimeoutNs) reason = "idle";
      else if (nowNs - e.counters.firstSeenNs >= activeTimeoutNs) reason = "active";
      if (reason === undefined) continue;
      this.#flows.delete(id);
      due.push({ ...e, reason });
    }
    this.#dedupe?.expire(nowNs);
    return due;
  }

  /** Removes and returns every flow (clean stop). */
  flushAll(): DueFlow[] {
    const due = [...this.#flows.values()].map((e) => ({ ...e, reason: "shutdown" as const }));
    this.#flows.clear();
    return due;
  }
}
