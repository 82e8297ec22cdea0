/**
 * Flow export of the collector: every tick it evicts the kernel flow table (exactly:
 * generation switch, then read-and-delete of the old one), adds the deltas and the
 * spilled packets of a full table to the {@link FlowCache}, and hands the records due
 * (idle, active, fallback) to the bounded export queue, deduped and decorated. At a
 * clean stop everything left is exported with end reason `shutdown`.
 */
import { CLOCK_MONOTONIC, CLOCK_REALTIME, clockGettimeNs, type FlowDelta } from "@periscope/bpf";
import { type NetflowExporter, NetflowExportQueue, type NetflowRecord } from "@periscope/netflow";
import { type Logger, RateLimitedLog } from "@periscope/telemetry";
import { type DueFlow, FlowCache } from "./netflow-cache.ts";
import type { NetflowConfig } from "./netflow-config.ts";
import { implausibleCounters } from "./netflow-guard.ts";
import type { NetflowMetrics } from "./netflow-metrics.ts";
import { type NetflowDecoration, toNetflowRecord } from "./netflow-record.ts";

/** The kernel side: `FlowTable` of @periscope/bpf. */
export interface FlowSource {
  enable(): void;
  evict(onFlow: (flow: FlowDelta) => void): number;
  disable(onFlow: (flow: FlowDelta) => void): number;
  drainSpill(onPacket: (flow: FlowDelta) => void, max?: number): number;
  readSpillLost(): bigint;
}

/** Clocks of the flow table (CLOCK_MONOTONIC) and the wall clock, ns. */
export interface NetflowClock {
  monotonicNs(): bigint;
  realtimeNs(): bigint;
}

/** Parts of a {@link NetflowService}. */
export interface NetflowServiceOptions {
  readonly config: NetflowConfig;
  readonly node: string;
  readonly source: FlowSource;
  readonly exporters: readonly NetflowExporter[];
  readonly metrics: NetflowMetrics;
  readonly log: Logger;
  /** Interface name by namespace cookie and ifindex ("" when unknown). */
  readonly ifname: (netnsCookie: bigint, ifindex: number) => string;
  readonly endpoint?: NetflowDecoration["endpoint"];
  readonly clock?: NetflowClock;
}

const SYSTEM_CLOCK: NetflowClock = {
  monotonicNs: () => clockGettimeNs(CLOCK_MONOTONIC),
  realtimeNs: () => clockGettimeNs(CLOCK_REALTIME),
};

/** How often the kernel table is evicted: a quarter of the shorter timeout, 50 ms..1 s. */
export function netflowTickMs(c: NetflowConfig): number {
  return Math.min(1000, Math.max(50, Math.floor(Math.min(c.activeTimeoutMs, c.idleTimeoutMs) / 4)));
}

/** Milliseconds between drains of the spill ring (packets of a full table). */
const SPILL_DRAIN_MS = 20;

/** The running flow export. */
export class NetflowService {
  readonly #o: NetflowServiceOptions;
  readonly #cache: FlowCache;
  readonly #queue: NetflowExportQueue;
  readonly #clock: NetflowClock;
  readonly #decoration: NetflowDecoration;
  readonly #spillLostLog: RateLimitedLog;
  readonly #implausibleLog: RateLimitedLog;
  #spillLost = 0n;
  #tick: ReturnType<typeof setInterval> | undefined;
  #spillTimer: ReturnType<typeof setInterval> | undefined;
  #stopped: Promise<void> | undefined;

  constructor(o: NetflowServiceOptions) {
    this.#o = o;
    this.#clock = o.clock ?? SYSTEM_CLOCK;
    this.#implausibleLog = new RateLimitedLog({
      log: o.log,
      describe: (n) => `${n} flow counters refused: they cannot be true`,
    });
    this.#cache = new FlowCache({
      activeTimeoutNs: BigInt(o.config.activeTimeoutMs) * 1_000_000n,
      idleTimeoutNs: BigInt(o.config.idleTimeoutMs) * 1_000_000n,
      dedupe: o.config.dedupe,
      onImplausible: (d, why) => this.#refuse("delta", d.key.ifindex, why),
    });
    this.#queue = new NetflowExportQueue({
      exporters: o.exporters,
      capacity: o.config.queueRecords,
      onDrop: (drop) => o.metrics.exportDropped(drop),
      log: o.log,
    });
    this.#spillLostLog = new RateLimitedLog({
      log: o.log,
      describe: (n) => `${n} packets not accounted: flow table and spill ring full`,
    });
    const clock = this.#clock;
    this.#decoration = {
      node: o.node,
      agentIp: o.config.agentIp,
      ifname: o.ifname,
      // Wall time of a monotonic time: now on the wall clock minus how long ago it was.
      wallMs: (ns) => {
        const ago = clock.monotonicNs() - ns;
        return Number((clock.realtimeNs() - ago) / 1_000_000n);
      },
      ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
    };
  }

  /** Turns kernel accounting on and starts the eviction timers. */
  start(): void {
    this.#o.source.enable();
    this.#tick = setInterval(() => this.#safe(() => this.tick()), netflowTickMs(this.#o.config));
    this.#spillTimer = setInterval(() => this.#safe(() => this.#drainSpill()), SPILL_DRAIN_MS);
  }

  #safe(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.#o.log.error({ err }, "flow eviction step failed");
    }
  }

  #drainSpill(): void {
    const spilled: FlowDelta[] = [];
    this.#o.source.drainSpill((f) => spilled.push(f));
    if (spilled.length > 0) {
      this.#o.metrics.fallback(spilled.length);
      this.#cache.add(spilled, true);
    }
    const lost = this.#o.source.readSpillLost();
    if (lost > this.#spillLost) {
      const n = Number(lost - this.#spillLost);
      this.#o.metrics.fallbackLost(n);
      this.#spillLostLog.note("flow_spill ring full", {}, n);
      this.#spillLost = lost;
    }
  }

  #refuse(stage: "delta" | "record", ifindex: number, why: string): void {
    this.#o.metrics.implausible(stage);
    this.#implausibleLog.note(`implausible flow ${stage}: ${why}`, { ifindex });
  }

  /** One eviction: kernel deltas in, due records out. Runs on the timer; tests may call it. */
  tick(): void {
    const deltas: FlowDelta[] = [];
    this.#o.source.evict((f) => deltas.push(f));
    this.#cache.add(deltas, false);
    this.#drainSpill();
    this.#export(this.#cache.sweep(this.#clock.monotonicNs()));
  }

  #export(due: readonly DueFlow[]): void {
    const out: NetflowRecord[] = [];
    let dropped = 0;
    for (const flow of due) {
      if (flow.duplicate && this.#o.config.dedupe === "drop") {
        dropped++;
        continue;
      }
      const why = implausibleCounters(flow.key.family, flow.counters);
      if (why !== undefined) {
        this.#refuse("record", flow.key.ifindex, why);
        continue;
      }
      const r = toNetflowRecord(flow, this.#decoration);
      this.#o.metrics.exported(r.endReason, r.packets, r.bytes);
      out.push(r);
    }
    if (dropped > 0) this.#o.metrics.dedupeDropped(dropped);
    this.#o.metrics.cached(this.#cache.size);
    if (out.length > 0) this.#queue.push(out);
  }

  /**
   * Stops the timers, turns kernel accounting off, exports everything held (end reason
   * `shutdown`) and waits for the exporters to take it, then closes them. Safe twice.
   */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      clearInterval(this.#tick);
      clearInterval(this.#spillTimer);
      const deltas: FlowDelta[] = [];
      this.#o.source.disable((f) => deltas.push(f));
      this.#cache.add(deltas, false);
      this.#drainSpill();
      this.#export(this.#cache.flushAll());
      this.#spillLostLog.flush();
      this.#implausibleLog.flush();
      await this.#queue.close();
    })();
    return this.#stopped;
  }
}
