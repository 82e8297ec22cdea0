import type { NetflowDrop } from "@periscope/netflow";
import type { Metrics } from "@periscope/telemetry";
import type { Counter, Gauge } from "prom-client";

/** Plain-number mirror of the flow export counters (tests, stats()). */
export interface NetflowStats {
  /** Records handed to the exporters. */
  records: number;
  /** Packets and bytes in those records (duplicates marked in mark mode included). */
  packets: bigint;
  bytes: bigint;
  /** Packets the kernel table had no room for, counted by the user-space accounter. */
  fallbackPackets: number;
  /** Packets neither the table nor the spill ring could take (kernel counter). */
  fallbackLost: number;
  /** Duplicate records not exported (dedupe drop mode). */
  dedupeDropped: number;
  /** Records dropped on the way to an exporter. */
  exportDropped: number;
  /** Kernel deltas and records refused because their counters cannot be true. */
  implausible: number;
}

/** The collector's flow export metrics (`periscope_collector_netflow_*`). */
export class NetflowMetrics {
  readonly stats: NetflowStats = {
    records: 0,
    packets: 0n,
    bytes: 0n,
    fallbackPackets: 0,
    fallbackLost: 0,
    dedupeDropped: 0,
    exportDropped: 0,
    implausible: 0,
  };
  readonly #records: Counter<"reason">;
  readonly #packets: Counter;
  readonly #bytes: Counter;
  readonly #fallback: Counter;
  readonly #fallbackLost: Counter;
  readonly #dedupe: Counter;
  readonly #exportDropped: Counter<"exporter" | "kind">;
  readonly #cached: Gauge;
  readonly #implausible: Counter<"stage">;

  constructor(metrics: Metrics) {
    this.#records = metrics.counter(
      "netflow_records_evicted_total",
      "Flow records handed to the exporters, by end reason (idle, active, shutdown, fallback).",
      ["reason"],
    );
    for (const reason of ["idle", "active", "shutdown", "fallback"]) {
      this.#records.inc({ reason }, 0);
    }
    this.#packets = metrics.counter(
      "netflow_packets_total",
      "Packets in the flow records of this node.",
    );
    this.#bytes = metrics.counter(
      "netflow_bytes_total",
      "L3 bytes in the flow records of this node.",
    );
    this.#fallback = metrics.counter(
      "netflow_fallback_packets_total",
      "Packets the kernel flow table had no room for, accounted in user space.",
    );
    this.#fallbackLost = metrics.counter(
      "netflow_fallback_lost_total",
      "Packets lost because the flow table and its spill ring buffer were both full.",
    );
    this.#dedupe = metrics.counter(
      "netflow_dedupe_dropped_total",
      "Flow records not exported: the same flow is reported from another interface first.",
    );
    this.#exportDropped = metrics.counter(
      "netflow_export_dropped_total",
      "Flow records dropped on the way to an exporter (overflow = it could not keep up).",
      ["exporter", "kind"],
    );
    this.#implausible = metrics.counter(
      "netflow_implausible_total",
      "Flow counters refused because they cannot be true (e.g. fewer bytes than headers), by stage: delta (read from the kernel) or record (before export).",
      ["stage"],
    );
    for (const stage of ["delta", "record"]) this.#implausible.inc({ stage }, 0);
    this.#cached = metrics.gauge(
      "netflow_cached_flows",
      "Flows held in user space between kernel eviction and their record.",
    );
  }

  exported(reason: string, packets: bigint, bytes: bigint): void {
    this.stats.records++;
    this.stats.packets += packets;
    this.stats.bytes += bytes;
    this.#records.inc({ reason });
    this.#packets.inc(Number(packets));
    this.#bytes.inc(Number(bytes));
  }

  fallback(packets: number): void {
    this.stats.fallbackPackets += packets;
    this.#fallback.inc(packets);
  }

  fallbackLost(packets: number): void {
    if (packets <= 0) return;
    this.stats.fallbackLost += packets;
    this.#fallbackLost.inc(packets);
  }

  dedupeDropped(records: number): void {
    this.stats.dedupeDropped += records;
    this.#dedupe.inc(records);
  }

  exportDropped(drop: NetflowDrop): void {
    this.stats.exportDropped += drop.count;
    this.#exportDropped.inc({ exporter: drop.exporter ?? "none", kind: drop.kind }, drop.count);
  }

  /** One delta or record whose counters cannot be true, left out. */
  implausible(stage: "delta" | "record"): void {
    this.stats.implausible++;
    this.#implausible.inc({ stage });
  }

  cached(n: number): void {
    this.#cached.set(n);
  }
}
