/**
 * Whole-pipeline bench: kernel → collector → NATS → enricher → NATS → observer → GetFlows
 * follow client, at several paced rates and flat out.
 *
 * What runs where: the trace program is driven with BPF_PROG_TEST_RUN in this process,
 * and the collector runs in this process too (startCollector with the loaded program,
 * one fresh program + collector per phase so each phase's flows carry their own node
 * name). nats-server, the enricher (services/enricher/src/main.ts), the observer
 * (services/observer/src/main.ts, with its defaults: 4095-entry ring, sort buffer) and the
 * follow client (bench/follow-client.ts) are child processes, as in production.
 *
 * Per phase it prints throughput, end-to-end latency (arrival at the follow client −
 * flow.time, i.e. from the kernel's boot timestamp; bench/tap.ts adds the kernel → raw
 * frame and kernel → FlowBatch stages from a sample), CPU use per process, and the loss
 * accounting: produced = kernel lost + collector lost + enricher failures + ring lapping
 * + delivered + unaccounted, where "unaccounted" should be 0.
 */

import type { NatsConnection } from "@nats-io/transport-node";
import type { TraceProgram } from "@periscope/bpf";
import { connectBus, openEndpointRegistry } from "@periscope/bus";
import type { LocalNats } from "@periscope/devstack";
import pino from "pino";
import { startCollector } from "../services/collector/src/collector.ts";
import { parseConfig } from "../services/collector/src/config.ts";
import { driveLoad, type LoadRate } from "./load.ts";
import { MIX_ENDPOINTS, type MixEntry, packetMix } from "./mix.ts";
import { type Downstream, lostOf, reportPhase } from "./phase-report.ts";
import { type FollowChild, startDownstream, type Teardown } from "./procs.ts";
import { machineCpuMs, metricSum, processCpuMs, scrapeMetrics } from "./report.ts";
import { StageTap } from "./tap.ts";

/** One load level. */
export interface PipelinePhase {
  readonly name: string;
  readonly rate: LoadRate;
  readonly durationMs: number;
  /** Warm-up (JIT, connections, KV caches): runs like the others, prints nothing. */
  readonly warmup?: boolean;
}

/** The default levels: below, around and well above what two cores sustain, then flat out. */
export const PIPELINE_PHASES: readonly PipelinePhase[] = [
  { name: "warmup", rate: 5_000, durationMs: 1_000, warmup: true },
  { name: "5k", rate: 5_000, durationMs: 2_000 },
  { name: "10k", rate: 10_000, durationMs: 2_000 },
  { name: "20k", rate: 20_000, durationMs: 2_000 },
  { name: "50k", rate: 50_000, durationMs: 2_000 },
  { name: "max", rate: "max", durationMs: 1_000 },
];

const OBSERVER_NODE = "bench-observer";
/** A phase ends once nothing moved for this long after everything was accounted. */
const QUIET_MS = 300;
/** ...or once nothing moved for this long (the rest is reported as unaccounted). */
const STALL_MS = 3_000;
/** ...or at the latest this long after the load stopped. */
const SETTLE_MAX_MS = 25_000;

/** Where the pipeline's parts are and how to read their counters. */
interface Pipeline {
  readonly nats: LocalNats;
  /** The bench's own NATS connection (for the stage tap). */
  readonly nc: NatsConnection;
  readonly mix: readonly MixEntry[];
  readonly enricherOps: number;
  readonly observerOps: number;
  readonly follow: FollowChild;
  readonly pids: Readonly<Record<string, number>>;
  readonly loadProgram: () => TraceProgram;
}

async function readDownstream(p: Pipeline): Promise<Downstream> {
  const [e, o, follow] = await Promise.all([
    scrapeMetrics(p.enricherOps),
    scrapeMetrics(p.observerOps),
    p.follow.snapshot(),
  ]);
  return {
    enricherRecords: metricSum(e, "periscope_enricher_records_received_total"),
    enricherFlows: metricSum(e, "periscope_enricher_flows_published_total"),
    enricherFailed: metricSum(e, "periscope_enricher_events_lost_total", (l) =>
      (l.where ?? "").startsWith("enricher_"),
    ),
    enricherMalformedFrames: metricSum(e, "periscope_enricher_frames_malformed_total"),
    observerSeen: metricSum(o, "periscope_observer_flows_received_total"),
    follow,
  };
}

function cpuSnapshot(pids: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([n, pid]) => [n, processCpuMs(pid) ?? 0]));
}

/** Progress of a phase after its load stopped, until everything is accounted or it stalls. */
interface Settled {
  readonly end: Downstream;
  /** performance.now() of the last change in the observer's / follow client's flow count. */
  readonly seenAt: number;
  readonly deliveredAt: number;
  /** performance.now() when the wait ended. */
  readonly doneAt: number;
}

async function settle(
  p: Pipeline,
  node: string,
  before: Downstream,
  upstreamAccounted: number,
  produced: number,
): Promise<Settled> {
  const lappedBefore = lostOf(before.follow, OBSERVER_NODE, "HUBBLE_RING_BUFFER");
  let end = before;
  let key = "";
  let seen = -1;
  let delivered = -1;
  let changedAt = performance.now();
  let seenAt = changedAt;
  let deliveredAt = changedAt;
  const start = performance.now();
  for (;;) {
    end = await readDownstream(p);
    const t = performance.now();
    const k = JSON.stringify(end);
    if (k !== key) changedAt = t;
    key = k;
    const s = end.observerSeen - before.observerSeen;
    const d = end.follow[node]?.flows ?? 0;
    if (s !== seen) seenAt = t;
    if (d !== delivered) deliveredAt = t;
    seen = s;
    delivered = d;
    const failed = end.enricherFailed - before.enricherFailed;
    const lapped = lostOf(end.follow, OBSERVER_NODE, "HUBBLE_RING_BUFFER") - lappedBefore;
    const atObserver = upstreamAccounted + failed + s >= produced;
    const followed = d + lapped >= s;
    const quiet = t - changedAt;
    if ((atObserver && followed && quiet > QUIET_MS) || quiet > STALL_MS) break;
    if (t - start > SETTLE_MAX_MS) {
      process.stderr.write(`bench: ${node} still moving ${SETTLE_MAX_MS} ms after the load\n`);
      break;
    }
    await Bun.sleep(25);
  }
  return { end, seenAt, deliveredAt, doneAt: performance.now() };
}

async function runPhase(p: Pipeline, phase: PipelinePhase): Promise<void> {
  const node = `bench-pipe-${phase.name}`;
  const program = p.loadProgram();
  const log = pino({ level: "warn", base: { service: "collector" } }, pino.destination(2));
  const config = parseConfig(
    [
      `--nats-url=${p.nats.url}`,
      `--node-name=${node}`,
      "--ops-addr=127.0.0.1:0",
      "--aggregation=none",
    ],
    {},
  );
  const collector = await startCollector(config, { program, log }).catch((err: unknown) => {
    program.close();
    throw err;
  });
  const tap = new StageTap(p.nc, node);
  try {
    await tap.ready();
    const before = await readDownstream(p);
    const cpu0 = cpuSnapshot(p.pids);
    const machine0 = machineCpuMs();
    const t0 = performance.now();
    const load = await driveLoad(program, p.mix, phase.rate, phase.durationMs);
    const tDriven = performance.now();
    await collector.stop();
    const st = collector.stats();
    const upstreamLost = st.kernelLost + st.queueLost + st.publishLost;
    const s = await settle(p, node, before, upstreamLost, load.produced);
    const cpu1 = cpuSnapshot(p.pids);
    const machine1 = machineCpuMs();
    const end = s.end;

    const lat = await p.follow.latency(node);
    if (phase.warmup) return;
    reportPhase(`pipeline-${phase.name}`, {
      node,
      observerNode: OBSERVER_NODE,
      load,
      collector: st,
      before,
      end,
      latency: lat,
      stages: tap.summary(),
      t0,
      tDriven,
      seenAt: s.seenAt,
      deliveredAt: s.deliveredAt,
      doneAt: s.doneAt,
      cpu: { before: cpu0, after: cpu1 },
      machine: { before: machine0, after: machine1 },
    });
  } finally {
    tap.stop();
    await collector.stop();
    program.close();
  }
}

/**
 * Starts the enricher, observer and follow client against `nats`, registers the mix's
 * endpoints, runs every phase and prints its figures. Everything it starts is pushed on
 * `teardown` (and ended there), also when a phase fails.
 */
export async function runPipelineBench(
  nats: LocalNats,
  teardown: Teardown,
  loadProgram: () => TraceProgram,
  phases: readonly PipelinePhase[] = PIPELINE_PHASES,
): Promise<void> {
  const log = pino({ level: "warn", base: { service: "bench" } }, pino.destination(2));
  const bus = await connectBus({ url: nats.url, name: "bench", log });
  teardown.push(() => bus.close());
  const registry = await openEndpointRegistry(bus);
  for (const ep of MIX_ENDPOINTS) await registry.put(ep);
  await registry.close();

  const { children, enricher, observer, enricherOps, observerOps, follow } = await startDownstream(
    nats.url,
    teardown,
    "bench-enricher",
    OBSERVER_NODE,
  );

  const pipeline: Pipeline = {
    nats,
    nc: bus.nc,
    mix: packetMix(),
    enricherOps,
    observerOps,
    follow,
    pids: {
      bench: process.pid,
      nats: nats.pid,
      enricher: enricher.pid,
      observer: observer.pid,
      follow: follow.pid,
    },
    loadProgram,
  };
  for (const phase of phases) {
    for (const [name, p] of [
      ["enricher", enricher],
      ["observer", observer],
    ] as const) {
      if (p.exitCode() !== null) {
        throw new Error(
          `${name} exited (${p.exitCode()}):\n${children.lines(name).slice(-20).join("\n")}`,
        );
      }
    }
    await runPhase(pipeline, phase);
  }
}
