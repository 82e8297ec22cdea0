/** The figures of one pipeline phase, from the counters taken before and after it. */

import type { CollectorStats } from "../services/collector/src/collector.ts";
import type { NodeCounts } from "./follow-client.ts";
import type { LoadResult } from "./load.ts";
import { emit, type LatencySummary } from "./report.ts";
import type { StageLatency } from "./tap.ts";

/** Counters of the downstream parts, summed since they started. */
export interface Downstream {
  enricherRecords: number;
  enricherFlows: number;
  /** Records the enricher could not turn into flows or publish (events_lost_total{where=enricher_*}). */
  enricherFailed: number;
  enricherMalformedFrames: number;
  observerSeen: number;
  follow: Record<string, NodeCounts>;
}

export function lostOf(counts: Record<string, NodeCounts>, node: string, source: string): number {
  return counts[node]?.lost[source] ?? 0;
}

/** Everything measured in one phase; times are performance.now() values in ms. */
export interface PhaseMeasurements {
  /** Node name of the phase's collector (its flows carry it). */
  readonly node: string;
  /** Node name the observer reports its own lost events under. */
  readonly observerNode: string;
  readonly load: LoadResult;
  readonly collector: Readonly<CollectorStats>;
  readonly before: Downstream;
  readonly end: Downstream;
  /** Kernel → follow client. */
  readonly latency: LatencySummary;
  /** Kernel → raw frame / FlowBatch on the bus (sampled). */
  readonly stages: StageLatency;
  /** Load started, load stopped, last change of the observer's / follow client's flow count, wait ended. */
  readonly t0: number;
  readonly tDriven: number;
  readonly seenAt: number;
  readonly deliveredAt: number;
  readonly doneAt: number;
  /** CPU ms per process name, before and after. */
  readonly cpu: { readonly before: Record<string, number>; readonly after: Record<string, number> };
  /** Machine-wide CPU ms, before and after. */
  readonly machine: {
    readonly before: { busy: number; total: number };
    readonly after: { busy: number; total: number };
  };
}

/**
 * Prints a phase's figures. The loss accounting: produced = kernel_lost + collector_lost +
 * enricher_failed + observer_ring_lapped + delivered + unaccounted. "unaccounted" counts
 * records that vanished without being reported anywhere (the NATS hop figures say where);
 * "unaccounted_in_stream" does the same sum from the LostEvents a GetFlows client sees.
 */
export function reportPhase(bench: string, m: PhaseMeasurements): void {
  const { node, before, end, collector: st, load } = m;
  const produced = load.produced;
  const collectorLost = st.queueLost + st.publishLost;
  const seen = end.observerSeen - before.observerSeen;
  const failed = end.enricherFailed - before.enricherFailed;
  const delivered = end.follow[node]?.flows ?? 0;
  const lapped =
    lostOf(end.follow, m.observerNode, "HUBBLE_RING_BUFFER") -
    lostOf(before.follow, m.observerNode, "HUBBLE_RING_BUFFER");

  emit(bench, "offered_events_per_s", produced / (load.wallMs / 1000), "events/s");
  emit(bench, "produced", produced, "events");
  emit(bench, "observer_flows_per_s", seen / ((m.seenAt - m.t0) / 1000), "flows/s");
  emit(bench, "delivered_flows_per_s", delivered / ((m.deliveredAt - m.t0) / 1000), "flows/s");
  emit(bench, "latency_min", m.latency.min, "ms");
  emit(bench, "latency_p50", m.latency.p50, "ms");
  emit(bench, "latency_p90", m.latency.p90, "ms");
  emit(bench, "latency_p99", m.latency.p99, "ms");
  emit(bench, "latency_max", m.latency.max, "ms");
  for (const [stage, l] of [
    ["raw_on_bus", m.stages.raw],
    ["flows_on_bus", m.stages.flows],
  ] as const) {
    emit(bench, `latency_${stage}_p50`, l.p50, "ms");
    emit(bench, `latency_${stage}_p99`, l.p99, "ms");
  }
  emit(bench, "settle_after_load", m.doneAt - m.tDriven, "ms");

  emit(bench, "kernel_lost", st.kernelLost, "events");
  emit(bench, "collector_lost", collectorLost, "events");
  emit(bench, "enricher_failed", failed, "events");
  const malformed = end.enricherMalformedFrames - before.enricherMalformedFrames;
  emit(bench, "enricher_malformed_frames", malformed, "frames");
  const rawHop = st.eventsPublished - (end.enricherRecords - before.enricherRecords);
  emit(bench, "nats_raw_hop_missing", rawHop, "events");
  const flowsHop = end.enricherFlows - before.enricherFlows - seen;
  emit(bench, "nats_flows_hop_missing", flowsHop, "flows");
  emit(bench, "observer_received", seen, "flows");
  emit(bench, "observer_ring_lapped", lapped, "events");
  emit(bench, "observer_ring_lapped_flows", seen - delivered, "flows");
  emit(bench, "delivered", delivered, "flows");
  const accounted = st.kernelLost + collectorLost + failed + lapped + delivered;
  emit(bench, "unaccounted", produced - accounted, "events");
  const inStream =
    lostOf(end.follow, node, "PERF_EVENT_RING_BUFFER") +
    lostOf(end.follow, node, "OBSERVER_EVENTS_QUEUE") +
    lostOf(end.follow, node, "UNKNOWN_LOST_EVENT_SOURCE") +
    lapped +
    delivered;
  emit(bench, "unaccounted_in_stream", produced - inStream, "events");

  // Per process over the busy span (CPU after the last arrival is idle time); machine-wide
  // figures over the whole phase, so "other" is what processes outside the bench used.
  const spanMs = Math.max(m.seenAt, m.deliveredAt, m.tDriven) - m.t0;
  const wholeMs = m.doneAt - m.t0;
  let ours = 0;
  for (const [name, ms] of Object.entries(m.cpu.after)) {
    const used = ms - (m.cpu.before[name] ?? 0);
    ours += used;
    emit(bench, `cpu_${name}`, (100 * used) / spanMs, "%core");
  }
  const busy = m.machine.after.busy - m.machine.before.busy;
  emit(bench, "cpu_machine_busy", (100 * busy) / wholeMs, "%core");
  emit(
    bench,
    "cpu_machine_cores",
    (m.machine.after.total - m.machine.before.total) / wholeMs,
    "cores",
  );
  emit(bench, "cpu_other_processes", (100 * (busy - ours)) / wholeMs, "%core");
}
