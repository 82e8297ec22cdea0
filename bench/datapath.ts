/**
 * Kernel → collector → NATS, sustained: a worker thread runs the trace program with
 * BPF_PROG_TEST_RUN at a fixed rate for several seconds (one core) while the collector
 * (drain, framer, JetStream publisher) runs on the main thread, and a durable JetStream
 * consumer counts and acknowledges every frame stored. Reports produced, drained,
 * published and received rates and checks the accounting: records received plus the
 * losses the frames report equal the records produced, exactly.
 */

import type { JsMsg } from "@nats-io/jetstream";
import { TraceProgram } from "@periscope/bpf";
import { connectBus, ensureDurable, ensureStream, RAW_STREAM, sanitizeToken } from "@periscope/bus";
import type { LocalNats } from "@periscope/devstack";
import { PACKED_HEADER_SIZE, packedSize, RECORD_TYPE_TRACE } from "@periscope/wire";
import pino from "pino";
import { type Collector, startCollector } from "../services/collector/src/collector.ts";
import { parseConfig } from "../services/collector/src/config.ts";
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

/** What the counting consumer saw, from a light walk of each RawFrame's fields. */
interface Received {
  frames: number;
  /** Trace records (type 4). */
  records: number;
  /** Records of other types (the program's debug events). */
  other: number;
  kernelLost: number;
  collectorLost: number;
  lastMs: number;
}

function readVarint(b: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    const byte = b[pos++] as number;
    v += (byte & 0x7f) * mul;
    if (byte < 0x80) return [v, pos];
    mul *= 128;
  }
}

function countRecord(type: number | undefined, into: Received): void {
  if (type === RECORD_TYPE_TRACE) into.records++;
  else into.other++;
}

/**
 * Counts the records by type (field 8 entries and the packed ones in field 12) and the
 * loss fields (6, 7) of a RawFrame without decoding it.
 */
export function countFrame(b: Uint8Array, into: Received): void {
  let pos = 0;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  while (pos < b.length) {
    let key: number;
    [key, pos] = readVarint(b, pos);
    const field = key >>> 3;
    if ((key & 7) === 0) {
      let v: number;
      [v, pos] = readVarint(b, pos);
      if (field === 6) into.kernelLost += v;
      else if (field === 7) into.collectorLost += v;
    } else {
      let len: number;
      [len, pos] = readVarint(b, pos);
      if (field === 8) countRecord(b[pos], into);
      if (field === 12) {
        for (let off = pos; off < pos + len; off += packedSize(view.getUint32(off, true))) {
          countRecord(b[off + PACKED_HEADER_SIZE], into);
        }
      }
      pos += len;
    }
  }
  into.frames++;
  into.lastMs = performance.now();
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

/** Runs one scenario and prints its figures under `bench`. */
export async function runDatapathScenario(
  s: DatapathScenario,
  nats: LocalNats,
  bench: string,
  objectPath?: string,
): Promise<void> {
  const node = `bench-${s.name}`;
  const log = pino({ level: "warn", base: { service: "bench" } }, pino.destination(2));
  const bus = await connectBus({ url: nats.url, name: "bench-datapath-counter", log });
  const program = TraceProgram.load({
    captureLen: s.captureLen,
    ...(objectPath !== undefined ? { objectPath } : {}),
  });
  let collector: Collector | undefined;
  const got: Received = {
    frames: 0,
    records: 0,
    other: 0,
    kernelLost: 0,
    collectorLost: 0,
    lastMs: 0,
  };
  const jsm = await bus.jsm();
  await jsm.streams.delete(RAW_STREAM).catch(() => false);
  await ensureStream(bus, "raw");
  await ensureDurable(bus, RAW_STREAM, "bench-datapath", {
    ackWaitMs: 30_000,
    maxAckPending: 8192,
  });
  const msgs = await (await bus.js().consumers.get(RAW_STREAM, "bench-datapath")).consume({
    max_messages: 256,
  });
  const consuming = (async () => {
    for await (const m of msgs) {
      const msg: JsMsg = m;
      if (msg.subject.startsWith(`periscope.raw.${sanitizeToken(node)}.`))
        countFrame(msg.data, got);
      msg.ack();
    }
  })();
  try {
    const config = parseConfig(
      [
        `--nats-url=${nats.url}`,
        `--node-name=${node}`,
        "--ops-addr=127.0.0.1:0",
        `--frame-max-records=${s.frameMaxRecords}`,
        // Every test_run repeats one packet: any aggregation would report it once.
        "--aggregation=none",
      ],
      {},
    );
    collector = await startCollector(config, { program, log });
    const c = collector;
    const cpu0 = processCpuMs(process.pid) ?? 0;
    const natsCpu0 = processCpuMs(nats.pid) ?? 0;
    const start = performance.now();
    const result = await produce({
      progFd: program.programFd("ingress"),
      packet: s.packet,
      rate: s.rate,
      durationMs: s.durationMs,
      chunk: 4096,
    });
    if (result.error !== undefined) throw new Error(result.error);
    const produced = result.produced;
    const progress = setInterval(
      () => process.stderr.write(`bench: ${JSON.stringify({ produced, ...c.stats() })}\n`),
      2000,
    );
    const tDrained = await until(
      "drain",
      start,
      () => {
        const st = c.stats();
        return st.eventsRead + st.kernelLost >= produced;
      },
      60_000,
    );
    await until(
      "publish",
      start,
      () => {
        const st = c.stats();
        return st.eventsPublished + st.queueLost + st.publishLost >= st.eventsRead;
      },
      60_000,
    );
    clearInterval(progress);
    await c.stop();
    collector = undefined;
    await until(
      "consumer",
      start,
      () => got.records + got.other >= c.stats().eventsPublished,
      60_000,
    );
    const cpuMs = (processCpuMs(process.pid) ?? 0) - cpu0;
    const natsCpuMs = (processCpuMs(nats.pid) ?? 0) - natsCpu0;
    const st = c.stats();
    const wallS = result.wallMs / 1000;
    emit(bench, "target_per_s", s.rate, "events/s");
    emit(bench, "produced", produced, "events");
    emit(bench, "produced_per_s", produced / wallS, "events/s");
    emit(bench, "drained_per_s", st.eventsRead / (tDrained / 1000), "events/s");
    emit(bench, "received", got.records, "events");
    emit(bench, "received_per_s", got.records / ((got.lastMs - start) / 1000), "events/s");
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
    emit(bench, "collector_process_cpu_ms_per_s", cpuMs / wallS, "ms/s");
    emit(bench, "nats_server_cpu_ms_per_s", natsCpuMs / wallS, "ms/s");
  } finally {
    await collector?.stop();
    await msgs.close();
    await consuming;
    await jsm.streams.delete(RAW_STREAM).catch(() => false);
    await bus.close();
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
      process.stderr.write(`bench: datapath ${s.name} run ${i}\n`);
      await runDatapathScenario(s, nats, `datapath-${s.name}-run${i}`, objectPath);
    }
  }
}
