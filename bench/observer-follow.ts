/**
 * Observer follow micro-bench: the observer (services/observer/src/main.ts, defaults:
 * 4095-entry ring and sort buffer) as a child process, a real nats-server, this process
 * publishing realistic FlowBatches (the enricher's own output for the bench packet mix,
 * re-stamped with the current time) at fixed rates, and one GetFlows follow client
 * (bench/follow-client.ts, gRPC over h2c). Per rate it prints the flows/s the follower
 * received, the events it was told it lost, and the observer's CPU time per published flow.
 *
 * Run: `bun bench/observer-follow.ts [rate ...]` (flows/s; default 5000 10000 20000).
 */

import { toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { connectBus, subjects } from "@periscope/bus";
import { freePort, startLocalNats } from "@periscope/devstack";
import { DEFAULT_CAPTURE, type EndpointInfo } from "@periscope/model";
import { type FlowBatch, FlowBatchSchema } from "@periscope/proto";
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

/** Publishes at `rate` flows/s for `ms`; every flow carries the publish time. */
async function publish(
  send: (payload: Uint8Array) => void,
  batches: readonly FlowBatch[],
  rate: number,
  ms: number,
): Promise<number> {
  const start = performance.now();
  let sent = 0;
  let k = 0;
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed >= ms) return sent;
    const owed = Math.floor((elapsed / 1000) * rate);
    while (sent + FLOWS_PER_BATCH <= owed) {
      const batch = batches[k++ % batches.length];
      if (batch === undefined) throw new RangeError("no batches");
      const time = timestampFromMs(Date.now());
      for (const r of batch.responses) {
        r.time = time;
        if (r.responseTypes.case === "flow") r.responseTypes.value.time = time;
      }
      send(toBinary(FlowBatchSchema, batch));
      sent += batch.responses.length;
    }
    await Bun.sleep(TICK_MS);
  }
}

async function main(rates: readonly number[]): Promise<void> {
  const teardown = new Teardown();
  const onSignal = (): void => {
    teardown.run().then(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  try {
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
    ]);
    await children.ready(observer, ops);
    const follow = new FollowChild(`http://127.0.0.1:${port}`);
    teardown.push(() => follow.stop());
    await until(
      "the follow stream",
      performance.now(),
      async () => metricSum(await scrapeMetrics(ops), "periscope_observer_active_streams") >= 1,
      15_000,
      50,
    );
    const batches = mixBatches();
    const send = (p: Uint8Array): void => bus.nc.publish(subjects.flows(NODE), p);
    const delivered = async (): Promise<{ flows: number; lost: number }> => {
      const snap = await follow.snapshot();
      let flows = 0;
      let lost = 0;
      for (const c of Object.values(snap)) {
        flows += c.flows;
        for (const n of Object.values(c.lost)) lost += n;
      }
      return { flows, lost };
    };
    await publish(send, batches, 5_000, WARMUP_MS);
    await Bun.sleep(500);
    for (const rate of rates) {
      const before = await delivered();
      const cpu0 = processCpuMs(observer.pid) ?? 0;
      const fcpu0 = processCpuMs(follow.pid) ?? 0;
      const t0 = performance.now();
      const sent = await publish(send, batches, rate, PHASE_MS);
      const mid = await delivered();
      const cpu1 = processCpuMs(observer.pid) ?? 0;
      const fcpu1 = processCpuMs(follow.pid) ?? 0;
      const secs = (performance.now() - t0) / 1000;
      await Bun.sleep(1_000); // let the follower catch up before the next phase
      const after = await delivered();
      const tag = `${rate}`;
      emit(BENCH, `${tag}.published`, sent / secs, "flows/s");
      emit(BENCH, `${tag}.delivered`, (mid.flows - before.flows) / secs, "flows/s");
      emit(BENCH, `${tag}.delivered_total`, after.flows - before.flows, "flows");
      emit(BENCH, `${tag}.lost`, after.lost - before.lost, "events");
      emit(BENCH, `${tag}.observer_cpu`, ((cpu1 - cpu0) * 1000) / sent, "us/flow");
      emit(BENCH, `${tag}.observer_load`, (cpu1 - cpu0) / 10 / secs, "%core");
      emit(BENCH, `${tag}.follow_client_load`, (fcpu1 - fcpu0) / 10 / secs, "%core");
    }
  } finally {
    await teardown.run();
  }
}

if (import.meta.main) {
  const args = process.argv.slice(2).map(Number);
  const rates = args.length > 0 ? args : [5_000, 10_000, 20_000];
  main(rates).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${BENCH}: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
