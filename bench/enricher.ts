/**
 * Enricher bench on the real-traffic mix (bench/testdata/enricher-mix.pcap.gz, made by
 * bench/mix-capture.ts: HTTP, DNS, bulk TCP, a cache-like TCP service, ICMP, UDP),
 * turned into trace records as the kernel writes them (128 bytes captured; 512 for DNS
 * and 1024 for HTTP with the collector's default capture rules) and packed into 256-record RawFrames as the collector
 * packs them. The mix is repeated with the client ports shifted per turn, so every turn
 * is new connections and DNS queries for the L7 tracker.
 *
 * - enricher-mix (one core, in process): flows/s and CPU-seconds per million flows of a
 *   frame's whole work (RawFrame decode, flows incl. L7, FlowBatch bytes), for the
 *   reference path (processFrame + compiled encoder) and the fast path (encodeFrame),
 *   with L7 parsing on (as the enricher runs) and off.
 * - enricher-nats: raw frames preloaded into JetStream (16 partitions), then one enricher
 *   process (and two, sharing the partitions) turns them into FlowBatches; after the first
 *   quarter (warm-up), flows/s until the last batch and the enrichers' CPU-seconds per
 *   million flows.
 */

import { create } from "@bufbuild/protobuf";
import type { EndpointRecord } from "@periscope/bus";
import { connectBus, ensureStream, openEndpointRegistry, subjects } from "@periscope/bus";
import { freePort, type LocalNats } from "@periscope/devstack";
import {
  compileEncoder,
  FlowBatchSchema,
  type FrameSource,
  FrameSourceSchema,
} from "@periscope/proto";
import {
  encodeRawFrame,
  encodeTraceRecord,
  FLAG_TRUNCATED,
  OBS_FROM_NETWORK,
  OBS_TO_NETWORK,
  PACKED_HEADER_SIZE,
  packedSize,
  RECORD_TYPE_TRACE,
  TRACE_REASON,
  TRACE_VERSION,
} from "@periscope/wire";
import pino from "pino";
import {
  DEFAULT_L7_DNS_PORTS,
  DEFAULT_L7_HTTP_HEADERS,
  DEFAULT_L7_HTTP_PORTS,
} from "../services/enricher/src/config.ts";
import { type FrameDeps, processFrame } from "../services/enricher/src/frames.ts";
import { encodeFrame } from "../services/enricher/src/frames-fast.ts";
import { L7Tracker } from "../services/enricher/src/l7/tracker.ts";
import { registryDeps } from "./decode.ts";
import {
  CAPTURE_ENDPOINTS,
  captureMix,
  defaultCaptureLen,
  type MixEntry,
  transportOf,
} from "./mix.ts";
import { ServiceChildren, type Teardown } from "./procs.ts";
import { emit, metricSum, processCpuMs, scrapeMetrics, until } from "./report.ts";

const NODE = "bench-node";
const RECORDS_PER_FRAME = 256;
/** Turns of the capture in one pass of frames (client ports differ per turn). */
const TURNS = 24;
const MEASURE_MS = 2500;
const PARTITIONS = 16;
/**
 * Poll interval of the enrichers' metrics: a scrape costs the enricher real CPU (prom-client's
 * heap statistics), so polling faster would inflate the CPU figures.
 */
const SCRAPE_MS = 500;
/** Passes of frames published for the runs over NATS. */
const NATS_PASSES = 8;

const encodeBatch = compileEncoder(FlowBatchSchema);

/** Reads a big-endian u16. */
const u16 = (b: Uint8Array, o: number): number => ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);

/** A copy of `e.packet` with the client's port moved by `shift` (ports of TCP/UDP only). */
function shiftClientPort(e: MixEntry, shift: number): Uint8Array {
  const p = e.packet.slice();
  const t = transportOf(p);
  if (t === undefined || (t.proto !== 6 && t.proto !== 17) || p.length < t.off + 4) return p;
  const at = e.direction === "egress" ? t.off : t.off + 2;
  const port = u16(p, at);
  if (port < 32768) return p; // a service port on the client: leave it
  const moved = 32768 + ((port - 32768 + shift) % 28232);
  p[at] = moved >> 8;
  p[at + 1] = moved & 0xff;
  return p;
}

/** Trace reason the kernel's connection table would give (client side of every connection). */
function traceReason(e: MixEntry, p: Uint8Array): number {
  const t = transportOf(p);
  if (t?.proto === 6 && ((p[t.off + 13] ?? 0) & 0x12) === 0x02) return TRACE_REASON.NEW;
  return e.direction === "egress" ? TRACE_REASON.ESTABLISHED : TRACE_REASON.REPLY;
}

/** Trace records of `turns` turns of the capture, 1 ms apart between turns. */
export function captureRecords(mix: readonly MixEntry[], turns: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let ts = 1_000_000_000_000n;
  for (let turn = 0; turn < turns; turn++) {
    let prev = mix[0]?.atNs ?? 0;
    for (const e of mix) {
      ts += BigInt(Math.max(1000, (e.atNs ?? prev) - prev));
      prev = e.atNs ?? prev;
      const packet = shiftClientPort(e, turn * 997);
      const cap = Math.min(defaultCaptureLen(packet), packet.length);
      const origLen = e.wireLen ?? packet.length;
      out.push(
        encodeTraceRecord({
          type: RECORD_TYPE_TRACE,
          obsPoint: e.direction === "ingress" ? OBS_FROM_NETWORK : OBS_TO_NETWORK,
          version: TRACE_VERSION,
          flags: cap < origLen ? FLAG_TRUNCATED : 0,
          cpu: out.length % 2,
          origLen,
          tsBootNs: ts,
          ifindex: 2,
          mark: 0,
          flowHash: 0,
          l3Proto: u16(packet, 12),
          pktType: 0,
          netnsCookie: 4097n,
          data: packet.subarray(0, cap),
          traceReason: traceReason(e, packet),
        }),
      );
    }
    ts += 1_000_000n;
  }
  return out;
}

/** Records back to back in ring buffer sample layout (RawFrame.packed_records). */
function pack(records: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(records.reduce((n, r) => n + packedSize(r.length), 0));
  const view = new DataView(out.buffer);
  let off = 0;
  for (const r of records) {
    view.setUint32(off, r.length, true);
    out.set(r, off + PACKED_HEADER_SIZE);
    off += packedSize(r.length);
  }
  return out;
}

/** RawFrames of 256 packed records, spread over `partitions` like the collector's. */
export function captureFrames(records: readonly Uint8Array[], partitions: number): Uint8Array[] {
  const frames: Uint8Array[] = [];
  const seqs = new Array<bigint>(partitions).fill(0n);
  const before = new Array<bigint>(partitions).fill(0n);
  for (let at = 0, i = 0; at < records.length; at += RECORDS_PER_FRAME, i++) {
    const part = i % partitions;
    const chunk = records.slice(at, at + RECORDS_PER_FRAME);
    seqs[part] = (seqs[part] ?? 0n) + 1n;
    frames.push(
      encodeRawFrame({
        nodeName: NODE,
        seq: seqs[part] ?? 1n,
        bootId: "bench-boot",
        partition: part,
        bootToRealtimeNs: 1_700_000_000_000_000_000n,
        sealedUnixNs: 1_700_000_000_000_000_000n,
        recordsBefore: before[part] ?? 0n,
        packedRecords: pack(chunk),
        packedCount: chunk.length,
      }),
    );
    before[part] = (before[part] ?? 0n) + BigInt(chunk.length);
  }
  return frames;
}

/** The enricher's lookups on the capture's endpoints, with a fresh L7 tracker when `l7`. */
function benchDeps(endpoints: readonly EndpointRecord[], l7: boolean): FrameDeps {
  const deps = registryDeps(endpoints);
  if (!l7) return deps;
  const ports = (s: string): Set<number> => new Set(s.split(",").map(Number));
  deps.l7 = new L7Tracker({
    dnsPorts: ports(DEFAULT_L7_DNS_PORTS),
    httpPorts: ports(DEFAULT_L7_HTTP_PORTS),
    httpHeaders: new Set(DEFAULT_L7_HTTP_HEADERS.split(",")),
  });
  return deps;
}

interface PathRate {
  flowsPerS: number;
  cpuSPerMillion: number;
  flowsPerPass: number;
  l7PerPass: number;
}

type Step = (frame: Uint8Array, deps: FrameDeps) => { flows: number; l7Flows: number };

/**
 * Runs passes over `frames` (fresh deps each pass), the paths taking turns pass by
 * pass for MEASURE_MS each (after one warm-up pass each), so a shared machine's
 * changing load weighs on both alike.
 */
function measure(frames: readonly Uint8Array[], l7: boolean, steps: readonly Step[]): PathRate[] {
  const pass = (step: Step): { flows: number; l7: number } => {
    const deps = benchDeps(CAPTURE_ENDPOINTS, l7);
    let flows = 0;
    let l7Flows = 0;
    for (const f of frames) {
      const r = step(f, deps);
      flows += r.flows;
      l7Flows += r.l7Flows;
    }
    return { flows, l7: l7Flows };
  };
  const first = steps.map((step) => pass(step));
  Bun.gc(true);
  const cpuUs = steps.map(() => 0);
  const wallMs = steps.map(() => 0);
  const flows = steps.map(() => 0);
  while (wallMs.some((ms) => ms < MEASURE_MS)) {
    steps.forEach((step, i) => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      flows[i] = (flows[i] ?? 0) + pass(step).flows;
      wallMs[i] = (wallMs[i] ?? 0) + performance.now() - t0;
      const c = process.cpuUsage(c0);
      cpuUs[i] = (cpuUs[i] ?? 0) + c.user + c.system;
    });
  }
  return steps.map((_, i) => ({
    flowsPerS: (flows[i] ?? 0) / ((wallMs[i] ?? 1) / 1000),
    cpuSPerMillion: (cpuUs[i] ?? 0) / (flows[i] ?? 1),
    flowsPerPass: first[i]?.flows ?? 0,
    l7PerPass: first[i]?.l7 ?? 0,
  }));
}

const sourceOf = (frame: { bootId: string; partition: number; seq: bigint }): FrameSource =>
  create(FrameSourceSchema, { bootId: frame.bootId, partition: frame.partition, seq: frame.seq });

/** In-process figures: reference vs fast path, L7 on and off. */
export async function runEnricherCoreBench(): Promise<void> {
  const mix = await captureMix();
  const records = captureRecords(mix, TURNS);
  const frames = captureFrames(records, PARTITIONS);
  const bench = "enricher-mix";
  emit(bench, "records_per_pass", records.length, "records");
  emit(bench, "frames_per_pass", frames.length, "frames");
  for (const l7 of [true, false]) {
    const tag = l7 ? "l7" : "l3l4";
    const [ref, fast] = measure(frames, l7, [
      (f, deps) => {
        const r = processFrame(f, deps);
        r.batch.source = sourceOf(r.frame);
        encodeBatch(r.batch);
        return r;
      },
      (f, deps) => encodeFrame(f, deps, sourceOf),
    ]);
    if (ref === undefined || fast === undefined) throw new Error("no measurement");
    if (fast.flowsPerPass !== ref.flowsPerPass || fast.l7PerPass !== ref.l7PerPass) {
      throw new Error(`fast path made ${fast.flowsPerPass} flows, reference ${ref.flowsPerPass}`);
    }
    emit(bench, `${tag}_flows_per_record`, ref.flowsPerPass / records.length, "flows");
    emit(bench, `${tag}_l7_flows_per_pass`, ref.l7PerPass, "flows");
    emit(bench, `${tag}_reference_flows_per_s`, ref.flowsPerS, "flows/s");
    emit(bench, `${tag}_reference_cpu_s_per_million_flows`, ref.cpuSPerMillion, "s");
    emit(bench, `${tag}_fast_flows_per_s`, fast.flowsPerS, "flows/s");
    emit(bench, `${tag}_fast_cpu_s_per_million_flows`, fast.cpuSPerMillion, "s");
  }
}

/**
 * Preloads the frames into PERISCOPE_RAW (fresh streams), then runs `replicas` enricher
 * processes until every frame's batch is out.
 */
export async function natsRun(
  nats: LocalNats,
  teardown: Teardown,
  frames: readonly Uint8Array[],
  replicas: number,
): Promise<void> {
  const bench = `enricher-nats-x${replicas}`;
  const log = pino({ level: "warn", base: { service: "bench" } }, pino.destination(2));
  const bus = await connectBus({ url: nats.url, name: "bench-enricher", log });
  teardown.push(() => bus.close());
  const jsm = await bus.jsm();
  for (const name of ["PERISCOPE_RAW", "PERISCOPE_FLOWS"]) {
    await jsm.streams.delete(name).catch(() => false);
  }
  await ensureStream(bus, "raw");
  await ensureStream(bus, "flows");
  const registry = await openEndpointRegistry(bus);
  for (const e of CAPTURE_ENDPOINTS) await registry.put(e);
  registry.close();
  const js = bus.js();
  const publish = async (from: number, to: number): Promise<void> => {
    const pending: Promise<unknown>[] = [];
    for (let i = from; i < to; i++) {
      const f = frames[i];
      if (f !== undefined) pending.push(js.publish(subjects.raw(NODE, i % PARTITIONS), f));
      if (pending.length >= 64) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
  };

  const all: ServiceChildren[] = [];
  const started: { pid: number; ops: number }[] = [];
  const waits: Promise<void>[] = [];
  for (let i = 0; i < replicas; i++) {
    // one supervisor per replica: a supervisor runs one process per service name
    const children = new ServiceChildren();
    teardown.push(() => children.stop());
    all.push(children);
    const ops = await freePort();
    const p = children.start("enricher", [
      `--nats-url=${nats.url}`,
      "--log-level=warn",
      `--node-name=bench-enricher-${i}`,
      `--ops-addr=127.0.0.1:${ops}`,
      `--partitions=${PARTITIONS}`,
    ]);
    started.push({ pid: p.pid, ops });
    waits.push(children.ready(p, ops));
  }
  /** Flows, batches and owned partitions of the replicas, from one scrape of each. */
  const counts = async (): Promise<{ flows: number; batches: number; owned: number[] }> => {
    let flows = 0;
    let batches = 0;
    const owned: number[] = [];
    for (const r of started) {
      const samples = await scrapeMetrics(r.ops);
      flows += metricSum(samples, "periscope_enricher_flows_published_total");
      batches += metricSum(samples, "periscope_enricher_batches_published_total");
      owned.push(metricSum(samples, "periscope_enricher_partitions_owned"));
    }
    return { flows, batches, owned };
  };
  await Promise.all(waits);
  // Frames go out once the replicas share the partitions evenly; the first quarter warms
  // them up (JIT), the rest is measured from its first publish to its last batch.
  await until(
    "partitions shared out",
    performance.now(),
    async () => (await counts()).owned.every((n) => n === PARTITIONS / replicas),
    60_000,
    100,
  );
  const warm = Math.ceil(frames.length / 4);
  await publish(0, warm);
  let at = await counts();
  await until(
    "the warm-up frames out",
    performance.now(),
    async () => {
      at = await counts();
      return at.batches >= warm;
    },
    300_000,
    SCRAPE_MS,
  );
  const start = at;
  const cpu0 = started.map((r) => processCpuMs(r.pid) ?? 0);
  const t0 = performance.now();
  await publish(warm, frames.length);
  await until(
    "every flow batch out",
    t0,
    async () => {
      at = await counts();
      return at.batches >= frames.length;
    },
    300_000,
    SCRAPE_MS,
  );
  const wallS = (performance.now() - t0) / 1000;
  const cpuMs = started.reduce((n, r, i) => n + ((processCpuMs(r.pid) ?? 0) - (cpu0[i] ?? 0)), 0);
  const flows = at.flows - start.flows;
  const b0 = start.batches;
  emit(bench, "frames_measured", frames.length - b0, "frames");
  emit(bench, "flows_per_s", flows / wallS, "flows/s");
  emit(bench, "cpu_s_per_million_flows", (cpuMs / 1000 / flows) * 1e6, "s");
  emit(bench, "flows_measured", flows, "flows");
  emit(bench, "frames_per_s", (frames.length - b0) / wallS, "frames/s");
  await Promise.all(all.map((c) => c.stop()));
}

/** Runs the whole enricher bench. */
export async function runEnricherBench(nats: LocalNats, teardown: Teardown): Promise<void> {
  await runEnricherCoreBench();
  // enough frames that start-up (JIT, partition leases) weighs little
  const frames = captureFrames(captureRecords(await captureMix(), TURNS * NATS_PASSES), PARTITIONS);
  emit("enricher-nats", "frames", frames.length, "frames");
  for (const replicas of [1, 2]) await natsRun(nats, teardown, frames, replicas);
}
