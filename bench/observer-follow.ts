/**
 * Observer follow bench: the observer (services/observer/src/main.ts with a
 * {@link BURST}-entry ring) as a child process, a real nats-server, this process publishing
 * realistic FlowBatches (the enricher's own output for the bench packet mix, re-stamped
 * with the current time) and counting GetFlows followers (bench/follow-client.ts --count:
 * raw HTTP/2, messages counted by their first byte). Figures:
 * - `client_alone`: what the counting client takes from a plain HTTP/2 server writing
 *   ready-made messages (the ceiling of any measurement through it);
 * - `<rate>.*`: at fixed publish rates, one gRPC follower: flows/s delivered, events it
 *   was told it lost, observer CPU µs per flow ingested and served (also above its idle
 *   CPU, `observer_idle_load`, which dominates at low rates), loads;
 * - `cli.*`: `periscope observe -f -o compact` to a file at the `ping -f` case's rate: flows
 *   printed, events it was told it lost, unaccounted, CPU per flow of the CLI and observer;
 * - `burst.*`: a follow stream asked for the last {@link BURST} stored flows first, from
 *   the observer's stream writer over gRPC, gRPC-Web (HTTP/2) and Connect over HTTP/1.1
 *   (the browser's path, `connect_h1`), and from its Connect handler
 *   (`connect_h1_handler`, the per-message baseline, from the last {@link BURST}/10):
 *   flows/s delivered while it catches up, observer CPU per flow, and the ratios.
 *
 * Run: `bun bench/observer-follow.ts [rate ...]` (flows/s; default 2000 50000), or as the
 * `observer-follow` part of `bun run bench`.
 */

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { connectBus, subjects } from "@periscope/bus";
import { freePort, startLocalNats } from "@periscope/devstack";
import { DEFAULT_CAPTURE, type EndpointInfo } from "@periscope/model";
import { type FlowBatch, FlowBatchSchema, GetFlowsResponseSchema } from "@periscope/proto";
import {
  encodeRawFrame,
  encodeTraceRecord,
  OBS_FROM_NETWORK,
  OBS_TO_NETWORK,
  RECORD_TYPE_TRACE,
  TRACE_VERSION,
} from "@periscope/wire";
import pino from "pino";
import { processFrame } from "../services/enricher/src/frames.ts";
import { MIX_ENDPOINTS, packetMix } from "./mix.ts";
import { FollowChild, ServiceChildren, Teardown } from "./procs.ts";
import { emit, metricSum, processCpuMs, scrapeMetrics, until } from "./report.ts";

const BENCH = "observer-follow";
const NODE = "bench-node";
const FLOWS_PER_BATCH = 128;
const BATCHES = 32;
const PHASE_MS = 3_000;
const WARMUP_MS = 1_500;
/** Ring size, and the stored flows a burst follow stream starts with. */
export const BURST = 200_000;
/** Longest a burst reader is watched, ms. */
const BURST_WINDOW_MS = 2_000;
/** How long the observer's idle CPU is measured, ms. */
const IDLE_MS = 2_000;
/** How often encoded batches are re-stamped with the current time, ms. */
const RESTAMP_MS = 500;
/** Publishing ticks per second; each tick sends the batches the rate owes so far. */
const TICK_MS = 10;

/** The enricher's FlowBatches for the bench mix (decoded objects, re-stamped per publish). */
function mixBatches(): FlowBatch[] {
  const mix = packetMix().flatMap((e) => Array.from({ length: e.burst }, () => e));
  const byIp = new Map(MIX_ENDPOINTS.map((e) => [e.ip, e]));
  const deps = {
    endpoint(ip: string): EndpointInfo | undefined {
      const rec = byIp.get(ip);
      if (rec === undefined) return undefined;
      const { ip: _ip, ...info } = rec;
      return info;
    },
    interfaceName: () => "eth0",
  };
  const out: FlowBatch[] = [];
  let ts = 1_000_000_000_000n;
  for (let b = 0; b < BATCHES; b++) {
    const records: Uint8Array[] = [];
    for (let i = 0; i < FLOWS_PER_BATCH; i++) {
      const e = mix[(b * FLOWS_PER_BATCH + i) % mix.length];
      if (e === undefined) throw new RangeError("empty packet mix");
      ts += 9_000n;
      const cap = Math.min(DEFAULT_CAPTURE, e.packet.length);
      records.push(
        encodeTraceRecord({
          type: RECORD_TYPE_TRACE,
          obsPoint: e.direction === "ingress" ? OBS_FROM_NETWORK : OBS_TO_NETWORK,
          version: TRACE_VERSION,
          flags: 0,
          cpu: i % 2,
          origLen: e.packet.length,
          tsBootNs: ts,
          ifindex: 2,
          mark: 0,
          flowHash: (i * 2654435761) >>> 0 || 1,
          l3Proto: ((e.packet[12] ?? 0) << 8) | (e.packet[13] ?? 0),
          pktType: 0,
          netnsCookie: 4097n,
          data: e.packet.subarray(0, cap),
        }),
      );
    }
    const frame = encodeRawFrame({
      nodeName: NODE,
      seq: BigInt(b + 1),
      bootId: "bench-boot",
      partition: 0,
      bootToRealtimeNs: 1_700_000_000_000_000_000n,
      sealedUnixNs: BigInt(Date.now()) * 1_000_000n,
      records,
    });
    out.push(processFrame(frame, deps).batch);
  }
  return out;
}

/** The mix's batches encoded, re-stamped with the current time every {@link RESTAMP_MS}. */
class EncodedBatches {
  #payloads: Uint8Array[] = [];
  #stampedMs = 0;
  #k = 0;
  constructor(private readonly batches: readonly FlowBatch[]) {}

  /** The next payload and its flow count. */
  next(): { payload: Uint8Array; flows: number } {
    const now = Date.now();
    if (now - this.#stampedMs >= RESTAMP_MS) {
      const time = timestampFromMs(now);
      this.#payloads = this.batches.map((batch) => {
        for (const r of batch.responses) {
          r.time = time;
          if (r.responseTypes.case === "flow") r.responseTypes.value.time = time;
        }
        return toBinary(FlowBatchSchema, batch);
      });
      this.#stampedMs = now;
    }
    const i = this.#k++ % this.#payloads.length;
    const payload = this.#payloads[i];
    const batch = this.batches[i];
    if (payload === undefined || batch === undefined) throw new RangeError("no batches");
    return { payload, flows: batch.responses.length };
  }
}

/** Publishes at `rate` flows/s for `ms` (Infinity: as fast as NATS takes them). */
async function publish(
  send: (payload: Uint8Array) => void,
  batches: EncodedBatches,
  rate: number,
  ms: number,
  maxFlows = Number.POSITIVE_INFINITY,
): Promise<number> {
  const start = performance.now();
  let sent = 0;
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed >= ms || sent >= maxFlows) return sent;
    const owed = Math.min(maxFlows, Math.floor((elapsed / 1000) * rate));
    while (sent + FLOWS_PER_BATCH <= owed) {
      const b = batches.next();
      send(b.payload);
      sent += b.flows;
    }
    await Bun.sleep(TICK_MS);
  }
}

/**
 * A plain HTTP/2 server answering every request with ready-made enveloped messages as
 * fast as the client takes them: measures the counting client alone.
 */
async function cannedServer(messages: readonly Uint8Array[]): Promise<{
  port: number;
  close(): Promise<void>;
}> {
  const parts: Buffer[] = [];
  let size = 0;
  for (let i = 0; size < 64 * 1024; i++) {
    const m = messages[i % messages.length];
    if (m === undefined) throw new RangeError("no messages");
    const env = Buffer.alloc(5 + m.length);
    env.writeUInt32BE(m.length, 1);
    env.set(m, 5);
    parts.push(env);
    size += env.length;
  }
  const chunk = Buffer.concat(parts);
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("stream", (stream: http2.ServerHttp2Stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    const pump = (): void => {
      while (!stream.destroyed && stream.write(chunk)) {
        // until the stream's buffer is full
      }
    };
    stream.on("drain", pump);
    stream.on("error", () => undefined);
    pump();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sessions) s.destroy();
      }),
  };
}

/** Flows a counting follower reported so far. */
async function counted(f: FollowChild): Promise<{ flows: number; lost: number }> {
  const snap = await f.snapshot();
  let flows = 0;
  let lost = 0;
  for (const c of Object.values(snap)) {
    flows += c.flows;
    for (const n of Object.values(c.lost)) lost += n;
  }
  return { flows, lost };
}

/**
 * Flows/s a counting follower takes once its first message arrived, over
 * {@link BURST_WINDOW_MS} or until it has `total` flows, whichever comes first.
 */
async function takeRate(
  f: FollowChild,
  total: number,
  cpuPid?: number,
): Promise<{ rate: number; flows: number; cpuUsPerFlow: number }> {
  await until("the first message", performance.now(), async () => (await counted(f)).flows > 0);
  const c0 = await counted(f);
  const cpu0 = cpuPid === undefined ? 0 : (processCpuMs(cpuPid) ?? 0);
  const t0 = performance.now();
  let c1 = c0;
  while (performance.now() - t0 < BURST_WINDOW_MS && c1.flows < total) {
    await Bun.sleep(20);
    c1 = await counted(f);
  }
  const cpu1 = cpuPid === undefined ? 0 : (processCpuMs(cpuPid) ?? 0);
  const secs = (performance.now() - t0) / 1000;
  const n = c1.flows - c0.flows;
  return { rate: n / secs, flows: c1.flows, cpuUsPerFlow: ((cpu1 - cpu0) * 1000) / n };
}

/**
 * `periscope observe -f` phases: the ping -f case's rate and twice it on the default path
 * (raw HTTP/2 and the lazy compact decoder), and the Connect client's full decode of each
 * flow (`PERISCOPE_OBSERVE_DECODE=full`, the path before it) at a rate it kept up with.
 */
const CLI_PHASES: readonly { tag: string; rate: number; env: Record<string, string> }[] = [
  { tag: "cli", rate: 25_000, env: {} },
  { tag: "cli_50000", rate: 50_000, env: {} },
  { tag: "cli_full_5000", rate: 5_000, env: { PERISCOPE_OBSERVE_DECODE: "full" } },
];

/**
 * `periscope observe -f -o compact` with its output going to a file, as a user would run
 * it, at `phase.rate`: flows printed and events it was told were lost, of those ingested.
 */
async function cliPhase(
  phase: (typeof CLI_PHASES)[number],
  url: string,
  send: (payload: Uint8Array) => void,
  batches: EncodedBatches,
  ingested: () => Promise<number>,
  streams: () => Promise<number>,
  observerPid: number,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "periscope-follow-"));
  const outFile = join(dir, "observe.txt");
  const cli = Bun.spawn(
    [
      resolve(import.meta.dir, "../periscope"),
      "observe",
      "--server",
      url.replace("http://", ""),
      "-f",
      "-o",
      "compact",
    ],
    {
      stdout: Bun.file(outFile),
      stderr: "ignore",
      stdin: "ignore",
      env: { ...process.env, ...phase.env },
    },
  );
  try {
    await until(
      "the CLI's stream",
      performance.now(),
      async () => (await streams()) >= 1,
      30_000,
      50,
    );
    const lines = (): { flows: number; lost: number } => {
      const text = readFileSync(outFile, "utf8");
      let flows = 0;
      let lost = 0;
      for (const line of text.split("\n")) {
        const m = /EVENTS LOST: \S+ CPU\(\d+\) (\d+)/.exec(line);
        if (m) lost += Number(m[1]);
        else if (line !== "") flows++;
      }
      return { flows, lost };
    };
    const before = lines();
    const in0 = await ingested();
    const cpu0 = processCpuMs(observerPid) ?? 0;
    const ccpu0 = processCpuMs(cli.pid) ?? 0;
    const t0 = performance.now();
    const sent = await publish(send, batches, phase.rate, PHASE_MS);
    const secs = (performance.now() - t0) / 1000;
    await until(
      "ingest of the phase",
      performance.now(),
      async () => (await ingested()) - in0 >= sent,
      30_000,
      50,
    );
    const got = (await ingested()) - in0;
    await until(
      "the CLI to account for the phase",
      performance.now(),
      () => {
        const l = lines();
        return l.flows + l.lost - before.flows - before.lost >= got;
      },
      30_000,
      100,
    ).catch(() => undefined); // reported below as unaccounted
    const after = lines();
    const cpu1 = processCpuMs(observerPid) ?? 0;
    const ccpu1 = processCpuMs(cli.pid) ?? 0;
    const printed = after.flows - before.flows;
    const lost = after.lost - before.lost;
    emit(BENCH, `${phase.tag}.published`, sent / secs, "flows/s");
    emit(BENCH, `${phase.tag}.ingested`, got, "flows");
    emit(BENCH, `${phase.tag}.printed`, printed, "flows");
    emit(BENCH, `${phase.tag}.lost`, lost, "events");
    emit(BENCH, `${phase.tag}.unaccounted`, got - printed - lost, "flows");
    emit(BENCH, `${phase.tag}.cli_cpu`, ((ccpu1 - ccpu0) * 1000) / Math.max(1, printed), "us/flow");
    emit(BENCH, `${phase.tag}.observer_cpu`, ((cpu1 - cpu0) * 1000) / Math.max(1, got), "us/flow");
  } finally {
    cli.kill("SIGKILL");
    await cli.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Publish rates of the live phases, flows/s. */
export const FOLLOW_RATES: readonly number[] = [2_000, 50_000];

/**
 * Runs the bench (see the file's doc comment); everything it starts is ended through
 * `teardown`, which the caller runs on a signal too. Prints one JSON line per figure.
 */
export async function runObserverFollowBench(
  teardown: Teardown,
  rates: readonly number[] = FOLLOW_RATES,
): Promise<void> {
  const mix = mixBatches();
  const batches = new EncodedBatches(mix);

  // The counting client alone, against ready-made messages.
  const canned = await cannedServer(
    mix.flatMap((b) => b.responses.map((r) => toBinary(GetFlowsResponseSchema, r))),
  );
  teardown.push(() => canned.close());
  const alone = new FollowChild(`http://127.0.0.1:${canned.port}`, ["--count"]);
  const aloneRate = await takeRate(alone, Number.POSITIVE_INFINITY);
  await alone.stop();
  emit(BENCH, "client_alone", aloneRate.rate, "flows/s");

  const log = pino({ level: "warn" }, pino.destination(2));
  const nats = await startLocalNats({ log });
  teardown.push(() => nats.stop());
  const bus = await connectBus({ url: nats.url, name: "bench", log });
  teardown.push(() => bus.close());
  const children = new ServiceChildren();
  teardown.push(() => children.stop());
  const [ops, port] = [await freePort(), await freePort()];
  const observer = children.start("observer", [
    `--nats-url=${nats.url}`,
    "--log-level=warn",
    "--node-name=bench-observer",
    `--listen-address=127.0.0.1:${port}`,
    `--ops-addr=127.0.0.1:${ops}`,
    `--max-flows=${BURST}`,
  ]);
  await children.ready(observer, ops);
  const url = `http://127.0.0.1:${port}`;
  const streams = async (): Promise<number> =>
    metricSum(await scrapeMetrics(ops), "periscope_observer_active_streams");
  const follow = new FollowChild(url, ["--count"]);
  teardown.push(() => follow.stop());
  await until(
    "the follow stream",
    performance.now(),
    async () => (await streams()) >= 1,
    15_000,
    50,
  );
  const send = (p: Uint8Array): void => bus.nc.publish(subjects.flows(NODE), p);
  await publish(send, batches, 5_000, WARMUP_MS);
  await Bun.sleep(500);
  const ingested = async (): Promise<number> =>
    metricSum(await scrapeMetrics(ops), "periscope_observer_flows_received_total");
  // What the observer spends with nothing to do (timers, bus heartbeats, scrapes).
  const idle0 = processCpuMs(observer.pid) ?? 0;
  const idleT0 = performance.now();
  await Bun.sleep(IDLE_MS);
  const idleMsPerSec =
    ((processCpuMs(observer.pid) ?? 0) - idle0) / ((performance.now() - idleT0) / 1000);
  emit(BENCH, "observer_idle_load", idleMsPerSec / 10, "%core");
  for (const rate of rates) {
    const before = await counted(follow);
    const in0 = await ingested();
    const cpu0 = processCpuMs(observer.pid) ?? 0;
    const fcpu0 = processCpuMs(follow.pid) ?? 0;
    const t0 = performance.now();
    const sent = await publish(send, batches, rate, PHASE_MS);
    const secs = (performance.now() - t0) / 1000;
    const cpu1 = processCpuMs(observer.pid) ?? 0;
    const fcpu1 = processCpuMs(follow.pid) ?? 0;
    // Everything published reaches the observer, then the follower; then the figures.
    await until(
      "ingest of the phase",
      performance.now(),
      async () => (await ingested()) - in0 >= sent,
      30_000,
      50,
    );
    const in1 = await ingested();
    await until(
      "the follower to account for the phase",
      performance.now(),
      async () => {
        const c = await counted(follow);
        return c.flows + c.lost - before.flows - before.lost >= in1 - in0;
      },
      30_000,
      50,
    ).catch(() => undefined); // reported below as unaccounted
    const after = await counted(follow);
    const cpu2 = processCpuMs(observer.pid) ?? 0;
    const tag = `${rate}`;
    const got = after.flows - before.flows;
    const lost = after.lost - before.lost;
    emit(BENCH, `${tag}.published`, sent / secs, "flows/s");
    emit(BENCH, `${tag}.ingested`, in1 - in0, "flows");
    emit(BENCH, `${tag}.delivered`, got, "flows");
    emit(BENCH, `${tag}.lost`, lost, "events");
    emit(BENCH, `${tag}.unaccounted`, in1 - in0 - got - lost, "flows");
    emit(BENCH, `${tag}.observer_cpu`, ((cpu2 - cpu0) * 1000) / (in1 - in0), "us/flow");
    const busyMs = cpu2 - cpu0 - (idleMsPerSec * (performance.now() - t0)) / 1000;
    emit(BENCH, `${tag}.observer_cpu_above_idle`, (busyMs * 1000) / (in1 - in0), "us/flow");
    emit(BENCH, `${tag}.observer_load`, (cpu1 - cpu0) / 10 / secs, "%core");
    emit(BENCH, `${tag}.follow_client_load`, (fcpu1 - fcpu0) / 10 / secs, "%core");
  }
  await follow.stop();
  await until(
    "the follower to go",
    performance.now(),
    async () => (await streams()) === 0,
    30_000,
    50,
  );

  // `periscope observe -f` (compact output to a file) at the ping -f rate.
  for (const phase of CLI_PHASES) {
    await cliPhase(phase, url, send, batches, ingested, streams, observer.pid);
    await until("the CLI's stream to go", performance.now(), async () => (await streams()) === 0);
  }

  // Burst: fill the ring, then follow streams that start with all of it.
  const fill = await publish(send, batches, Number.POSITIVE_INFINITY, 60_000, BURST);
  await until(
    "the ring to fill",
    performance.now(),
    async () =>
      metricSum(await scrapeMetrics(ops), "periscope_observer_ring_entries") >=
      Math.min(fill, BURST),
    60_000,
    100,
  );
  const burst: Record<string, number> = {};
  // The Connect handler's stream asks for a tenth: over HTTP/1.1 it goes on sending the
  // whole catch-up after its client is gone (at its rate, minutes for the full ring).
  for (const [name, args, number] of [
    ["connect_h1_handler", ["--connect", "--handler"], BURST / 10],
    ["connect_h1", ["--connect"], BURST],
    ["grpc_web", ["--web"], BURST],
    ["grpc", [], BURST],
  ] as const) {
    const f = new FollowChild(url, ["--count", `--number=${number}`, ...args]);
    const r = await takeRate(f, number, observer.pid);
    await f.stop();
    burst[name] = r.rate;
    emit(BENCH, `burst.${name}.delivered`, r.rate, "flows/s");
    emit(BENCH, `burst.${name}.observer_cpu`, r.cpuUsPerFlow, "us/flow");
    await until(
      "the burst stream to end",
      performance.now(),
      async () => (await streams()) === 0,
      60_000,
      50,
    );
  }
  emit(BENCH, "burst.grpc_vs_connect", (burst.grpc ?? 0) / (burst.connect_h1_handler ?? 1), "x");
  emit(
    BENCH,
    "burst.connect_h1_vs_handler",
    (burst.connect_h1 ?? 0) / (burst.connect_h1_handler ?? 1),
    "x",
  );
  emit(BENCH, "burst.grpc_vs_client_alone", (burst.grpc ?? 0) / aloneRate.rate, "x");
}

async function main(rates: readonly number[]): Promise<void> {
  const teardown = new Teardown();
  const onSignal = (): void => {
    teardown.run().then(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  try {
    await runObserverFollowBench(teardown, rates);
  } finally {
    await teardown.run();
  }
}

if (import.meta.main) {
  const args = process.argv.slice(2).map(Number);
  const rates = args.length > 0 ? args : FOLLOW_RATES;
  main(rates).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${BENCH}: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
