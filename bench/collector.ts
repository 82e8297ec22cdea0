/**
 * Collector throughput: drives the trace program with BPF_PROG_TEST_RUN while the
 * collector's drain loop, framer and publisher run against a local nats-server, and a
 * subscriber counts the records it receives.
 */

import { connect, type NatsConnection } from "@nats-io/transport-node";
import { TraceProgram } from "@periscope/bpf";
import { sanitizeToken } from "@periscope/bus";
import type { LocalNats } from "@periscope/devstack";
import { decodeRawFrame, rawFrameRecordCount } from "@periscope/wire";
import pino from "pino";
import { type Collector, startCollector } from "../services/collector/src/collector.ts";
import { parseConfig } from "../services/collector/src/config.ts";
import { tcpFullSegment, tcpSyn } from "./packets.ts";
import { emit, until, yieldToLoop } from "./report.ts";

interface Scenario {
  name: string;
  packet: Uint8Array;
  captureLen: number;
  /** test_run iterations in total and per call. */
  total: number;
  chunk: number;
  /** Wait for the collector to catch up between chunks (false: a burst that may overflow the ring). */
  paced: boolean;
}

const SCENARIOS: Scenario[] = [
  {
    name: "syn74-cap128",
    packet: tcpSyn(),
    captureLen: 128,
    total: 200_000,
    chunk: 2_000,
    paced: true,
  },
  {
    name: "full1514-cap1536",
    packet: tcpFullSegment(),
    captureLen: 1536,
    total: 50_000,
    chunk: 500,
    paced: true,
  },
  {
    name: "syn74-burst",
    packet: tcpSyn(),
    captureLen: 128,
    total: 200_000,
    chunk: 50_000,
    paced: false,
  },
];

async function runScenario(s: Scenario, nats: LocalNats, sub: NatsConnection): Promise<void> {
  const node = `bench-${s.name}`;
  const received = { records: 0, frames: 0, kernelLost: 0n, collectorLost: 0n };
  const subscription = sub.subscribe(`periscope.raw.${sanitizeToken(node)}.>`, {
    callback: (err, msg) => {
      if (err) throw err;
      const f = decodeRawFrame(msg.data);
      received.frames++;
      received.records += rawFrameRecordCount(f);
      received.kernelLost += f.kernelLost;
      received.collectorLost += f.collectorLost;
    },
  });
  await sub.flush();
  const program = TraceProgram.load({ captureLen: s.captureLen });
  let collector: Collector | undefined;
  try {
    const config = parseConfig(
      [
        `--nats-url=${nats.url}`,
        `--node-name=${node}`,
        "--ops-addr=127.0.0.1:0",
        "--aggregation=none",
        // Kernel drops from the rest of the machine would share the ring and its losses.
        "--drops=off",
      ],
      {},
    );
    const log = pino({ level: "warn", base: { service: "collector" } }, pino.destination(2));
    collector = await startCollector(config, { program, log });
    const c = collector;
    const settled = (): number => {
      const st = c.stats();
      return st.eventsRead + st.kernelLost;
    };

    let produced = 0;
    let runWallNs = 0;
    let kernelNs = 0;
    const start = performance.now();
    while (produced < s.total) {
      const n = Math.min(s.chunk, s.total - produced);
      const t0 = Bun.nanoseconds();
      const r = program.testRun(s.packet, n, "ingress");
      runWallNs += Bun.nanoseconds() - t0;
      kernelNs += r.durationNs * n;
      produced += n;
      if (s.paced) {
        while (produced - settled() > s.chunk * 2) await yieldToLoop();
      } else await yieldToLoop();
    }
    const tDrained = await until("drain", start, () => settled() >= s.total);
    const tPublished = await until("publish", start, () => {
      const st = c.stats();
      return st.eventsPublished + st.queueLost + st.publishLost >= st.eventsRead;
    });
    const tReceived = await until(
      "subscriber",
      start,
      () => received.records >= c.stats().eventsPublished,
    );
    await c.stop();
    await sub.flush();
    const st = c.stats();

    emit(s.name, "kernel_events_per_s", s.total / (runWallNs / 1e9), "events/s");
    emit(s.name, "ns_per_test_run_iteration", runWallNs / s.total, "ns");
    emit(s.name, "ns_per_iteration_kernel_reported", kernelNs / s.total, "ns");
    emit(s.name, "collector_drained_per_s", st.eventsRead / (tDrained / 1000), "events/s");
    emit(s.name, "published_per_s", st.eventsPublished / (tPublished / 1000), "events/s");
    emit(s.name, "received_per_s", received.records / (tReceived / 1000), "events/s");
    emit(s.name, "records_received", received.records, "events");
    emit(s.name, "frames_received", received.frames, "frames");
    emit(s.name, "kernel_lost", st.kernelLost, "events");
    emit(s.name, "collector_lost", st.queueLost + st.publishLost, "events");
    emit(s.name, "kernel_lost_reported_in_frames", Number(received.kernelLost), "events");
    const accounted = received.records + Number(received.kernelLost + received.collectorLost);
    emit(s.name, "unaccounted", s.total - accounted, "events");
  } finally {
    subscription.unsubscribe();
    await collector?.stop();
    program.close();
  }
}

/** Runs the collector scenarios against `nats` and prints their figures. */
export async function runCollectorBench(nats: LocalNats): Promise<void> {
  const sub = await connect({ servers: nats.url });
  try {
    for (const s of SCENARIOS) await runScenario(s, nats, sub);
  } finally {
    await sub.close();
  }
}
