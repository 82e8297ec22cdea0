import type { Metrics } from "@periscope/telemetry";
import type { ContainerCache } from "./container-cache.ts";
import type { FlowProcesses } from "./flow-join.ts";
import type { ProcessIngestStats } from "./ingest.ts";
import type { ProcessCache } from "./process-cache.ts";

/** How often the caches' counts are copied into the metrics, ms. */
const SYNC_MS = 500;

/** What the process metrics read. */
export interface ProcessMetricSources {
  readonly cache: ProcessCache;
  readonly containers: ContainerCache;
  readonly join: FlowProcesses;
  readonly ingest: { readonly stats: ProcessIngestStats };
}

/**
 * Exposes the process side of the enricher as metrics, every label set registered from
 * the start (a zero shows before the first event):
 * `process_cache_entries`, `process_cache_evictions_total`,
 * `process_cache_lookups_total{result=hit|miss}`, `process_cache_proc_reads_total`,
 * `process_lifecycle_records_total` (exec/fork/exit applied), `container_cache_entries`,
 * `socket_owner_records_total`, `socket_owners`, `socket_owners_forgotten_total{reason=evicted|idle}`,
 * `process_join_flows_total{result=joined|no_owner|owner_expired|process_unknown}` (TCP and
 * UDP flows; process_unknown flows carry only the socket-owner record's pid, uid, cgroup and comm).
 * Returns the function that stops the copying (after a last copy).
 */
export function startProcessMetrics(metrics: Metrics, src: ProcessMetricSources): () => void {
  const entries = metrics.gauge(
    "process_cache_entries",
    "Processes in the process cache (running and recently exited)",
  );
  const evictions = metrics.counter(
    "process_cache_evictions_total",
    "Processes dropped from the process cache (retention after exit over, or cache full)",
  );
  const lookups = metrics.counter(
    "process_cache_lookups_total",
    "Process cache lookups by (tgid, start time), by result",
    ["result"],
  );
  const procReads = metrics.counter(
    "process_cache_proc_reads_total",
    "Reads of /proc/<pid> for processes the kernel records had not told about",
  );
  const lifecycle = metrics.counter(
    "process_lifecycle_records_total",
    "Exec, fork and exit records applied to the process cache",
  );
  const containers = metrics.gauge(
    "container_cache_entries",
    "Containers in the container cache (any state)",
  );
  const ownerRecords = metrics.counter(
    "socket_owner_records_total",
    "Socket-owner records received in raw frames",
  );
  const owners = metrics.gauge("socket_owners", "Sockets whose owner the flow join holds");
  const forgotten = metrics.counter(
    "socket_owners_forgotten_total",
    "Socket owners the flow join dropped, by reason (evicted: table full; idle: no flow for a while)",
    ["reason"],
  );
  const joined = metrics.counter(
    "process_join_flows_total",
    "TCP and UDP flows by the outcome of the process join (joined: owner and process known)",
    ["result"],
  );
  const seen = new Map<string, number>();
  const add = (key: string, now: number, inc: (n: number) => void): void => {
    const before = seen.get(key) ?? 0;
    if (now > before) inc(now - before);
    seen.set(key, now);
  };
  const sync = (): void => {
    const c = src.cache.stats;
    const j = src.join.stats;
    entries.set(src.cache.size);
    add("evicted", c.evicted, (n) => evictions.inc(n));
    add("hit", c.hits, (n) => lookups.inc({ result: "hit" }, n));
    add("miss", c.misses, (n) => lookups.inc({ result: "miss" }, n));
    add("procReads", c.procReads, (n) => procReads.inc(n));
    add("lifecycle", src.ingest.stats.records, (n) => lifecycle.inc(n));
    containers.set(src.containers.list().length);
    add("owners", j.ownerRecords, (n) => ownerRecords.inc(n));
    owners.set(src.join.size);
    add("ownerEvicted", j.evicted, (n) => forgotten.inc({ reason: "evicted" }, n));
    add("ownerIdle", j.idleExpired, (n) => forgotten.inc({ reason: "idle" }, n));
    add("joined", j.flowsWithProcess, (n) => joined.inc({ result: "joined" }, n));
    add("noOwner", j.noOwner, (n) => joined.inc({ result: "no_owner" }, n));
    add("expired", j.ownerExpired, (n) => joined.inc({ result: "owner_expired" }, n));
    add("unknown", j.processUnknown, (n) => joined.inc({ result: "process_unknown" }, n));
  };
  for (const result of ["hit", "miss"]) lookups.inc({ result }, 0);
  for (const reason of ["evicted", "idle"]) forgotten.inc({ reason }, 0);
  for (const result of ["joined", "no_owner", "owner_expired", "process_unknown"]) {
    joined.inc({ result }, 0);
  }
  sync();
  const timer = setInterval(sync, SYNC_MS);
  return () => {
    clearInterval(timer);
    sync();
  };
}

/** What a container event publisher counts (see ContainerEventStats). */
export type ContainerEventKind = "published" | "announced" | "skipped";

/**
 * Registers `container_events_total{kind=published|announced|skipped}` (every kind from
 * the start) and returns the function that counts one event of a kind.
 */
export function containerEventCounter(metrics: Metrics): (kind: ContainerEventKind) => void {
  const events = metrics.counter(
    "container_events_total",
    "Container lifecycle events by kind (published: a change sent; announced: a container's state sent when this replica became the publisher; skipped: a change seen while another replica published)",
    ["kind"],
  );
  for (const kind of ["published", "announced", "skipped"]) events.inc({ kind }, 0);
  return (kind) => events.inc({ kind });
}
