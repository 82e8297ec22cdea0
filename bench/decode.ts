/**
 * Decode micro-bench: the enricher's per-frame work (processFrame: RawFrame decode,
 * record decode, packet → flow.Flow, endpoint and interface lookups, reply tracking)
 * on one core, then the FlowBatch encoding the enricher publishes (protobuf-es `toBinary`
 * and the compiled encoder the enricher uses) and the decoding the observer does on
 * receipt. Frames hold 256 trace records of the realistic mix.
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { EndpointRecord } from "@periscope/bus";
import { DEFAULT_CAPTURE, type EndpointInfo } from "@periscope/model";
import { compileEncoder, FlowBatchSchema } from "@periscope/proto";
import {
  encodeRawFrame,
  encodeTraceRecord,
  FLAG_TRUNCATED,
  OBS_FROM_NETWORK,
  OBS_TO_NETWORK,
  RECORD_TYPE_TRACE,
  TRACE_VERSION,
} from "@periscope/wire";
import { type FrameDeps, processFrame } from "../services/enricher/src/frames.ts";
import { MIX_ENDPOINTS, type MixEntry, packetMix } from "./mix.ts";
import { emit } from "./report.ts";

const BENCH = "decode-mix256";
const RECORDS_PER_FRAME = 256;
const FRAMES = 64;
const WARMUP_MS = 300;
const MEASURE_MS = 1500;
const NODE = "bench-node";
const NETNS_COOKIE = 4097n;

/** Kernel-shaped trace records: the mix expanded by burst, captured at 128 bytes. */
export function mixRecords(mix: readonly MixEntry[], count: number): Uint8Array[] {
  const expanded = mix.flatMap((e) => Array.from({ length: e.burst }, () => e));
  const out: Uint8Array[] = [];
  let ts = 1_000_000_000_000n;
  for (let i = 0; i < count; i++) {
    const e = expanded[i % expanded.length];
    if (e === undefined) throw new RangeError("empty packet mix");
    ts += 9_000n;
    const cap = Math.min(DEFAULT_CAPTURE, e.packet.length);
    out.push(
      encodeTraceRecord({
        type: RECORD_TYPE_TRACE,
        obsPoint: e.direction === "ingress" ? OBS_FROM_NETWORK : OBS_TO_NETWORK,
        version: TRACE_VERSION,
        flags: cap < e.packet.length ? FLAG_TRUNCATED : 0,
        cpu: i % 2,
        origLen: e.packet.length,
        tsBootNs: ts,
        ifindex: 2 + (i % 4),
        mark: 0,
        flowHash: (i * 2654435761) >>> 0 || 1,
        l3Proto: ((e.packet[12] ?? 0) << 8) | (e.packet[13] ?? 0),
        pktType: 0,
        netnsCookie: NETNS_COOKIE,
        data: e.packet.subarray(0, cap),
      }),
    );
  }
  return out;
}

/** Lookups shaped like the enricher's KV-backed registries (key mangling, copy on hit). */
export function registryDeps(endpoints: readonly EndpointRecord[]): FrameDeps {
  const byKey = new Map(endpoints.map((e) => [e.ip.replaceAll(":", "_"), e]));
  const ifNames = new Map([2, 3, 4, 5].map((i) => [`${NODE}|${NETNS_COOKIE}|${i}`, `eth${i}`]));
  return {
    endpoint(ip: string): EndpointInfo | undefined {
      const rec = byKey.get(ip.replaceAll(":", "_"));
      if (rec === undefined) return undefined;
      const { ip: _ip, ...info } = rec;
      return info;
    },
    interfaceName: (node, cookie, ifindex) => ifNames.get(`${node}|${cookie}|${ifindex}`),
  };
}

/** Runs `step` repeatedly for `ms` (after a warm-up); returns units done per second. */
function rate(step: () => number, ms: number): number {
  const warmEnd = performance.now() + WARMUP_MS;
  while (performance.now() < warmEnd) step();
  Bun.gc(true);
  let units = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    units += step();
    now = performance.now();
  }
  return units / ((now - start) / 1000);
}

/** Runs the decode micro-bench and prints its figures. */
export function runDecodeBench(): void {
  const records = mixRecords(packetMix(), RECORDS_PER_FRAME * FRAMES);
  const frames = Array.from({ length: FRAMES }, (_, f) =>
    encodeRawFrame({
      nodeName: NODE,
      seq: BigInt(f + 1),
      bootId: "bench-boot",
      partition: 0,
      bootToRealtimeNs: 1_700_000_000_000_000_000n,
      sealedUnixNs: BigInt(Date.now()) * 1_000_000n,
      records: records.slice(f * RECORDS_PER_FRAME, (f + 1) * RECORDS_PER_FRAME),
    }),
  );
  const deps = registryDeps(MIX_ENDPOINTS);

  let i = 0;
  let failures = 0;
  const decodePerS = rate(() => {
    const r = processFrame(frames[i++ % FRAMES] ?? new Uint8Array(), deps);
    for (const n of r.failures.values()) failures += n;
    return r.flows;
  }, MEASURE_MS);

  const results = frames.map((f) => processFrame(f, deps));
  const batches = results.map((r) => r.batch);
  const encoded = batches.map((b) => toBinary(FlowBatchSchema, b));
  const flows = results.reduce((n, r) => n + r.flows, 0);
  const batchBytes = encoded.reduce((n, b) => n + b.length, 0);
  const rawBytes = frames.reduce((n, f) => n + f.length, 0);

  let j = 0;
  const encodePerS = rate(() => {
    const batch = batches[j++ % FRAMES];
    if (batch !== undefined) toBinary(FlowBatchSchema, batch);
    return RECORDS_PER_FRAME;
  }, MEASURE_MS / 2);
  const encodeFast = compileEncoder(FlowBatchSchema);
  encoded.forEach((bytes, n) => {
    const fast = encodeFast(batches[n] ?? create(FlowBatchSchema));
    if (!Buffer.from(fast).equals(Buffer.from(bytes))) {
      throw new Error(`compiled FlowBatch encoder differs from toBinary on frame ${n}`);
    }
  });
  let jf = 0;
  const encodeFastPerS = rate(() => {
    const batch = batches[jf++ % FRAMES];
    if (batch !== undefined) encodeFast(batch);
    return RECORDS_PER_FRAME;
  }, MEASURE_MS / 2);
  let k = 0;
  const ingestPerS = rate(() => {
    fromBinary(FlowBatchSchema, encoded[k++ % FRAMES] ?? new Uint8Array());
    return RECORDS_PER_FRAME;
  }, MEASURE_MS / 2);

  emit(BENCH, "process_frame_records_per_s", decodePerS, "records/s");
  emit(BENCH, "process_frame_us_per_record", 1e6 / decodePerS, "us");
  emit(BENCH, "record_failures", failures, "records");
  emit(BENCH, "flows_per_frame", flows / FRAMES, "flows");
  emit(BENCH, "flowbatch_encode_flows_per_s", encodePerS, "flows/s");
  emit(BENCH, "flowbatch_encode_fast_flows_per_s", encodeFastPerS, "flows/s");
  emit(BENCH, "flowbatch_decode_flows_per_s", ingestPerS, "flows/s");
  emit(BENCH, "flowbatch_bytes_per_flow", batchBytes / flows, "bytes");
  emit(BENCH, "rawframe_bytes_per_record", rawBytes / (RECORDS_PER_FRAME * FRAMES), "bytes");
  emit(
    BENCH,
    "enricher_core_records_per_s",
    1 / (1 / decodePerS + 1 / encodeFastPerS),
    "records/s",
  );
}
