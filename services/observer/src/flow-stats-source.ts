/**
 * Feeds {@link FlowStats} from the flow records on `periscope.netflows.>` (core NATS: the
 * collectors publish them for direct subscribers, no stream keeps them) and serves the
 * sums as `periscope.flowstats.v1.FlowStatsService/GetFlowStats`. Without collectors
 * exporting records nothing arrives and every answer is empty. Undecodable messages and
 * records without addresses or times are counted (metric and the window's `malformed`),
 * logged at most once per interval, and skipped.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import type { Subscription } from "@nats-io/transport-node";
import { type Bus, subjects } from "@periscope/bus";
import { canonicalIp, formatIPv4, formatIPv6 } from "@periscope/model";
import { flowstatsV1, netflowV1 } from "@periscope/proto";
import { type Logger, type Metrics, RateLimitedLog } from "@periscope/telemetry";
import type { FlowStats, StatRecord } from "./flow-stats.ts";

/** Text of a periscope.netflow.v1.Ip, undefined when unset or malformed. */
export function ipText(ip: netflowV1.Ip | undefined): string | undefined {
  const f = ip?.ipFamily;
  if (f?.case === "ipv4") {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, f.value);
    return formatIPv4(b, 0);
  }
  if (f?.case === "ipv6" && f.value.length === 16) return formatIPv6(f.value, 0);
  return undefined;
}

/** A record as the aggregator takes it, or what is wrong with it. */
export function statRecord(r: netflowV1.NetflowRecord, node: string): StatRecord | string {
  const src = ipText(r.network?.srcAddr);
  const dst = ipText(r.network?.dstAddr);
  if (src === undefined || dst === undefined) return "record without source or destination address";
  if (r.timeFlowStart === undefined || r.timeFlowEnd === undefined)
    return "record without time_flow_start or time_flow_end";
  return {
    node: r.node || node,
    src,
    dst,
    protocol: r.transport?.protocol ?? 0,
    srcPort: r.transport?.srcPort ?? 0,
    dstPort: r.transport?.dstPort ?? 0,
    bytes: r.bytes,
    packets: r.packets,
    firstMs: timestampMs(r.timeFlowStart),
    lastMs: timestampMs(r.timeFlowEnd),
  };
}

/** Settings of {@link startFlowStatsSource}. */
export interface FlowStatsSourceOptions {
  readonly bus: Bus;
  readonly stats: FlowStats;
  readonly log: Logger;
  /** Registry for `periscope_observer_flow_stats_*` metrics (omit in tests that need none). */
  readonly metrics?: Metrics;
  readonly now?: () => number;
}

/** A running subscription. */
export interface FlowStatsSource {
  /** Messages received and malformed, records duplicate (skipped as such). */
  counts(): { messages: number; malformed: number; duplicates: number };
  stop(): Promise<void>;
}

/**
 * Subscribes to every node's flow records and adds them to `o.stats`; resolves once the
 * server has the subscription (core NATS: records published before that are not seen).
 */
export async function startFlowStatsSource(o: FlowStatsSourceOptions): Promise<FlowStatsSource> {
  const now = o.now ?? Date.now;
  const m = o.metrics;
  const recordsCounter = m?.counter(
    "flow_stats_records_total",
    "Flow records taken by the flow stats, by outcome (counted, duplicate, dropped = entry cap reached, expired = older than the retention, malformed)",
    ["outcome"],
  );
  const messages = m?.counter("flow_stats_messages_total", "NetflowRecords messages received");
  const evicted = m?.counter(
    "flow_stats_evicted_entries_total",
    "Flow stats entries evicted (oldest bucket) to stay under the entry cap",
  );
  const entries = m?.gauge("flow_stats_entries", "Flow stats entries held");
  const bad = new RateLimitedLog({
    log: o.log,
    describe: (n) => `${n} malformed flow record messages or records skipped`,
    intervalMs: 60_000,
  });
  const counts = { messages: 0, malformed: 0, duplicates: 0 };
  let evictedSeen = 0;
  const sub: Subscription = o.bus.nc.subscribe(subjects.netflowsAll, {
    callback: (err, msg) => {
      if (err) {
        bad.note(`flow record subscription: ${err.message}`);
        return;
      }
      counts.messages++;
      messages?.inc();
      const t = now();
      const node = msg.subject.slice(subjects.netflowsAll.length - 1);
      let batch: netflowV1.NetflowRecords;
      try {
        batch = fromBinary(netflowV1.NetflowRecordsSchema, msg.data);
      } catch (e) {
        counts.malformed++;
        o.stats.addMalformed(1, t);
        recordsCounter?.inc({ outcome: "malformed" });
        bad.note(`undecodable NetflowRecords: ${e instanceof Error ? e.message : String(e)}`, {
          subject: msg.subject,
        });
        return;
      }
      if (batch.lost !== undefined)
        o.stats.addCollectorLoss(
          batch.lost.fallbackLostPackets,
          batch.lost.exportDroppedRecords,
          t,
        );
      for (const r of batch.entries) {
        if (r.duplicate) {
          counts.duplicates++;
          recordsCounter?.inc({ outcome: "duplicate" });
          continue;
        }
        const rec = statRecord(r, node);
        if (typeof rec === "string") {
          counts.malformed++;
          o.stats.addMalformed(1, t);
          recordsCounter?.inc({ outcome: "malformed" });
          bad.note(rec, { subject: msg.subject });
          continue;
        }
        recordsCounter?.inc({ outcome: o.stats.add(rec, t) });
      }
      const ev = o.stats.counters.evictedEntries;
      if (ev > evictedSeen) {
        evicted?.inc(ev - evictedSeen);
        evictedSeen = ev;
      }
      entries?.set(o.stats.entries);
    },
  });
  try {
    await o.bus.nc.flush();
  } catch (err) {
    // reconnecting: the client subscribes again when it is back
    o.log.warn({ err }, "flow stats: NATS flush after subscribing failed");
  }
  return {
    counts: () => ({ ...counts }),
    async stop() {
      sub.unsubscribe();
    },
  };
}

/** Registers `periscope.flowstats.v1.FlowStatsService` over `stats` on a router. */
export function flowStatsRoutes(
  stats: FlowStats,
  now: () => number = Date.now,
): (router: ConnectRouter) => void {
  return (router) => {
    router.service(flowstatsV1.FlowStatsService, {
      async getFlowStats(req) {
        const sinceMs = req.since !== undefined ? timestampMs(req.since) : undefined;
        const untilMs = req.until !== undefined ? timestampMs(req.until) : undefined;
        if (sinceMs !== undefined && untilMs !== undefined && untilMs < sinceMs)
          throw new ConnectError("until is before since", Code.InvalidArgument);
        const q = await stats.query(
          {
            ...(sinceMs !== undefined ? { sinceMs } : {}),
            ...(untilMs !== undefined ? { untilMs } : {}),
            limit: req.limit,
            ips: new Set(req.ips.map((ip) => canonicalIp(ip) ?? ip)),
          },
          now(),
        );
        return create(flowstatsV1.GetFlowStatsResponseSchema, {
          stats: q.entries.map((e) => ({
            sourceIp: e.src,
            destinationIp: e.dst,
            protocol: e.protocol,
            port: e.port,
            portSide: e.side,
            bytes: e.bytes,
            packets: e.packets,
            records: BigInt(e.records),
            nodes: e.nodes,
            first: timestampFromMs(e.firstMs),
            last: timestampFromMs(e.lastMs),
          })),
          coveredSince: timestampFromMs(q.coveredSinceMs),
          coveredUntil: timestampFromMs(q.coveredUntilMs),
          bucketMs: stats.bucketMs,
          lost: {
            collectorLostPackets: q.loss.collectorLostPackets,
            collectorDroppedRecords: q.loss.collectorDroppedRecords,
            droppedRecords: BigInt(q.loss.dropped),
            malformed: BigInt(q.loss.malformed),
            ...(q.loss.evictedUntilMs !== undefined
              ? { evictedUntil: timestampFromMs(q.loss.evictedUntilMs) }
              : {}),
          },
          omitted: q.omitted,
        });
      },
    });
  };
}
