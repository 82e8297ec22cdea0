/**
 * Kernel → collector → NATS, sustained: a worker thread runs the trace program with
 * BPF_PROG_TEST_RUN at a fixed rate for several seconds (one core) while the collector
 * (drain, framer, JetStream publisher) runs on the main thread, and a durable JetStream
 * consumer on a thread of its own counts and acknowledges every frame stored. Reports
 * produced, drained,
 * published and received rates and checks the accounting: records received plus the
 * losses the frames report equal the records produced, exactly. CPU is reported per thread
 * (the machine is shared and noisy: CPU time per record is the steadier figure).
 */

import { TraceProgram } from "@periscope/bpf";
import { connectBus, ensureDurable, ensureStream, RAW_STREAM, sanitizeToken } from "@periscope/bus";
import type { LocalNats } from "@periscope/devstack";
import pino from "pino";
import { createSystemClock } from "../services/collector/src/clock.ts";
import { type Collector, startCollector } from "../services/collector/src/collector.ts";
import { parseConfig } from "../services/collector/src/config.ts";
import { DrainLoop } from "../services/collector/src/drain.ts";
import { Framer } from "../services/collector/src/framer.ts";
import { PublishQueue } from "../services/collector/src/publisher.ts";
import type { ConsumerCounts, ConsumerReply, ConsumerRequest } from "./datapath-consumer.ts";
import type { ProducerRequest, ProducerResult } from "./datapath-producer.ts";
import { tcpFullSegment, tcpSyn } from "./packets.ts";
import { emit, processCpuMs, until } from "./report.ts";

/** One sustained run. */
export interface DatapathScenario {
  readonly name: string;
  readonly packet: Uint8Array;
  readonly captureLen: number;
  /** Records per second the producer aims for. */
  readonly rate: number;
  readonly durationMs: number;
  /** Collector frame limit, records. */
  readonly frameMaxRecords: number;
}

async function produce(req: ProducerRequest): Promise<ProducerResult> {
  const worker = new Worker(new URL("./datapath-producer.ts", import.meta.url).href);
  try {
    return await new Promise<ProducerResult>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<ProducerResult>) => resolve(e.data);
      worker.onerror = (e) => reject(new Error(`producer worker: ${e.message}`));
      worker.postMessage(req);
    });
  } finally {
    worker.terminate();
  }
}

/** The counting consumer worker (datapath-consumer.ts) and its requests. */
class ConsumerThread {
  readonly #worker = new Worker(new URL("./datapath-consumer.ts", import.meta.url).href);
  #waiting: ((r: ConsumerReply) => void) | undefined;
  #failure: string | undefined;

  constructor() {
    this.#worker.onmessage = (e: MessageEvent<ConsumerReply>) => {
      if (e.data.type === "error") this.#failure = e.data.message;
      const w = this.#waiting;
      this.#waiting = undefined;
      w?.(e.data);
    };
  }

  async ask(req: ConsumerRequest): Promise<ConsumerReply> {
    if (this.#failure !== undefined) throw new Error(`datapath consumer: ${this.#failure}`);
    const reply = new Promise<ConsumerReply>((resolve) => {
      this.#waiting = resolve;
    });
    this.#worker.postMessage(req);
    const r = await Promise.race([reply, Bun.sleep(10_000).then(() => undefined)]);
    if (r === undefined) throw new Error(`datapath consumer did not answer ${req.type}`);
    if (r.type === "error") throw new Error(`datapath consumer: ${r.message}`);
    return r;
  }

  async counts(): Promise<ConsumerCounts> {
    const r = await this.ask({ type: "counts" });
    if (r.type !== "counts") throw new Error(`datapath consumer answered ${r.type}`);
    return r.counts;
  }

  async close(): Promise<void> {
    await this.ask({ type: "stop" }).catch(() => undefined);
    this.#worker.terminate();
  }
}

function threadCpuMs(since?: NodeJS.CpuUsage): number {
  const u = process.threadCpuUsage(since);
  return (u.user + u.system) / 1000;
}

/** Runs one scenario and prints its figures under `bench`. */
export async function runDatapathScenario(
  s: DatapathScenario,
  nats: LocalNats,
  bench: string,
  objectPath?: string,
): Promise<void> {
  const node = `bench-${s.name}`;
  const log = pino({ level: "warn", base: { service: "bench" } }, pino.destination(2));
  const bus = await connectBus({ url: nats.url, name: "bench-datapath", log });
  const jsm = await bus.jsm();
  await jsm.streams.delete(RAW_STREAM).catch(() => false);
  await ensureStream(bus, "raw");
  await ensureDurable(bus, RAW_STREAM, "bench-datapath", {
    ackWaitMs: 30_000,
    maxAckPending: 8192,
  });
  const consumer = new ConsumerThread();
  let program: TraceProgram | undefined;
  let collector: Collector | undefined;
  try {
    await consumer.ask({
      type: "start",
      url: nats.url,
      durable: "bench-datapath",
      subjectPrefix: `periscope.raw.${sanitizeToken(node)}.`,
    });
    program = TraceProgram.load({
      captureLen: s.captureLen,
      ...(objectPath !== undefined ? { objectPath } : {}),
    });
    const config = parseConfig(
      [
        `--nats-url=${nats.url}`,
        `--node-name=${node}`,
        "--ops-addr=127.0.0.1:0",
        `--frame-max-records=${s.frameMaxRecords}`,
        // Every test_run repeats one packet: any aggregation would report it once.
        "--aggregation=none",
        // Kernel drops from the rest of the machine would share the ring and its losses.
        "--drops=off",
      ],
      {},
    );
    collector = await startCollector(config, { program, log });
    const c = collector;
    const natsCpu0 = processCpuMs(nats.pid) ?? 0;
    const consumerCpu0 = (await consumer.counts()).threadCpuMs;
    const mainCpu0 = process.threadCpuUsage();
    const start = performance.timeOrigin + performance.now();
    const result = await produce({
      progFd: program.programFd("ingress"),
      packet: s.packet,
      rate: s.rate,
      durationMs: s.durationMs,
      chunk: 4096,
    });
    if (result.error !== undefined) throw new Error(result.error);
    const produced = result.produced;
    const t0 = performance.now();
    const tDrained = await until(
      "drain",
      t0,
      () => {
        const st = c.stats();
        return st.eventsRead + st.kernelLost >= produced;
      },
      60_000,
    );
    await until(
      "publish",
      t0,
      () => {
        const st = c.stats();
        return st.eventsPublished + st.queueLost + st.publishLost >= st.eventsRead;
      },
      60_000,
    );
    const mainCpuMs = threadCpuMs(mainCpu0);
    await c.stop();
    collector = undefined;
    const st = c.stats();
    let got = await consumer.counts();
    await until(
      "consumer",
      t0,
      async () => {
        got = await consumer.counts();
        return got.records + got.other >= st.eventsPublished;
      },
      60_000,
      20,
    );
    const natsCpuMs = (processCpuMs(nats.pid) ?? 0) - natsCpu0;
    const wallS = result.wallMs / 1000;
    const drainedS = wallS + tDrained / 1000;
    emit(bench, "target_per_s", s.rate, "events/s");
    emit(bench, "produced", produced, "events");
    emit(bench, "produced_per_s", produced / wallS, "events/s");
    emit(bench, "drained_per_s", st.eventsRead / drainedS, "events/s");
    emit(bench, "received", got.records, "events");
    emit(bench, "received_per_s", got.records / ((got.lastAtMs - start) / 1000), "events/s");
    emit(bench, "received_ratio", got.records / produced, "ratio");
    emit(bench, "frames", got.frames, "frames");
    emit(bench, "other_records_received", got.other, "events");
    emit(bench, "kernel_lost", got.kernelLost, "events");
    emit(bench, "collector_lost", got.collectorLost, "events");
    emit(
      bench,
      "unaccounted",
      produced - got.records - got.kernelLost - got.collectorLost,
      "events",
    );
    emit(bench, "collector_thread_cpu_ms_per_s", mainCpuMs / drainedS, "ms/s");
    emit(
      bench,
      "collector_thread_cpu_ns_per_record",
      (mainCpuMs * 1e6) / Math.max(1, st.eventsRead),
      "ns",
    );
    emit(bench, "producer_thread_cpu_ms_per_s", result.threadCpuMs / wallS, "ms/s");
    emit(
      bench,
      "consumer_thread_cpu_ms_per_s",
      (got.threadCpuMs - consumerCpu0) / drainedS,
      "ms/s",
    );
    emit(bench, "nats_server_cpu_ms_per_s", natsCpuMs / drainedS, "ms/s");
  } finally {
    await collector?.stop();
    await consumer.close();
    await jsm.streams.delete(RAW_STREAM).catch(() => false);
    await bus.close();
    program?.close();
  }
}

/**
 * The collector's own part alone: drain loop, framer and publish queue as the collector
 * wires them, with a transport that takes every frame at once (no broker), to tell the
 * collector's cost per record from the NATS client's and the broker's.
 */
export async function runDrainOnlyScenario(s: DatapathScenario, bench: string): Promise<void> {
  const program = TraceProgram.load({ captureLen: s.captureLen });
  try {
    program.setSettings({ aggregation: "none" });
    let frames = 0;
    let records = 0;
    let kernelLost = 0n;
    const queue = new PublishQueue({
      transport: { publish: async () => {}, connected: () => true },
      subjectFor: String,
      maxFrames: 1024,
      onPublished: (f) => {
        frames++;
        records += f.records;
        kernelLost += f.kernelLost;
      },
    });
    const framer = new Framer({
      nodeName: "bench",
      bootId: "bench",
      partitions: 1,
      maxRecords: s.frameMaxRecords,
      maxDelayMs: 50,
      clock: createSystemClock(),
      sink: (f) => queue.offer(f),
    });
    const loop = new DrainLoop({ source: program, framer, queue });
    const cpu0 = process.threadCpuUsage();
    loop.start();
    const result = await produce({
      progFd: program.programFd("ingress"),
      packet: s.packet,
      rate: s.rate,
      durationMs: s.durationMs,
      chunk: 4096,
    });
    loop.stop();
    await queue.drain(5000);
    const cpuMs = threadCpuMs(cpu0);
    const wallS = result.wallMs / 1000;
    emit(bench, "produced_per_s", result.produced / wallS, "events/s");
    emit(bench, "framed_per_s", records / wallS, "events/s");
    emit(bench, "framed_ratio", records / result.produced, "ratio");
    emit(bench, "kernel_lost", Number(kernelLost), "events");
    emit(bench, "unaccounted", result.produced - records - Number(kernelLost), "events");
    emit(bench, "frames", frames, "frames");
    emit(bench, "collector_thread_cpu_ns_per_record", (cpuMs * 1e6) / Math.max(1, records), "ns");
    emit(bench, "collector_thread_cpu_ms_per_s", cpuMs / wallS, "ms/s");
  } finally {
    program.close();
  }
}

/** The kernel → NATS scenarios of `bun run bench -- --only=datapath`. */
export const DATAPATH_SCENARIOS: readonly DatapathScenario[] = [
  {
    name: "syn74-cap128",
    packet: tcpSyn(),
    captureLen: 128,
    rate: 1_000_000,
    durationMs: 10_000,
    frameMaxRecords: 4096,
  },
  {
    name: "full1514-cap1536",
    packet: tcpFullSegment(),
    captureLen: 1536,
    rate: 200_000,
    durationMs: 10_000,
    frameMaxRecords: 4096,
  },
];

/** Runs every scenario `runs` times (the machine is noisy: look at the spread). */
export async function runDatapathBench(
  nats: LocalNats,
  runs = 3,
  objectPath?: string,
): Promise<void> {
  for (const s of DATAPATH_SCENARIOS) {
    for (let i = 1; i <= runs; i++) {
      process.stderr.write(`bench: datapath ${s.name} drain only, run ${i}\n`);
      await runDrainOnlyScenario(s, `datapath-drain-only-${s.name}-run${i}`);
    }
    for (let i = 1; i <= runs; i++) {
      process.stderr.write(`bench: datapath ${s.name} run ${i}\n`);
      await runDatapathScenario(s, nats, `datapath-${s.name}-run${i}`, objectPath);
    }
  }
}
