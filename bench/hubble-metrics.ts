/**
 * Hubble metrics micro-bench: what `--metrics` adds per flow in the enricher, with
 * Hubble's usual handler list, without and with pod source/destination context. The
 * enricher stages a batch's increments right after decoding it (flows hot in the CPU
 * caches: "stage", one batch again and again) and applies them when the batch is stored
 * ("commit", over 64 batches' increments in turn). "observe_cold" is staging and applying
 * in one go over 64 FlowBatches (16k flows) in turn, flows out of the caches, for
 * comparison. One core; figures are ns of CPU per flow.
 */
import type { FlowBatch } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { encodeRawFrame } from "@periscope/wire";
import { processFrame } from "../services/enricher/src/frames.ts";
import { HubbleMetrics, parseMetricsSpec } from "../services/enricher/src/hubble-metrics/index.ts";
import { mixRecords, registryDeps } from "./decode.ts";
import { MIX_ENDPOINTS, packetMix } from "./mix.ts";
import { emit } from "./report.ts";

const BENCH = "hubble-metrics";
const RECORDS_PER_FRAME = 256;
const FRAMES = 64;
const WARMUP_MS = 300;
const MEASURE_MS = 1500;
const HANDLERS = [
  "dns:query;ignoreAAAA",
  "drop",
  "tcp",
  "flow",
  "port-distribution",
  "icmp",
  "http",
];

/** Raw frames of the realistic mix. */
function mixFrames(): Uint8Array[] {
  const records = mixRecords(packetMix(), RECORDS_PER_FRAME * FRAMES);
  return Array.from({ length: FRAMES }, (_, f) =>
    encodeRawFrame({
      nodeName: "bench-node",
      seq: BigInt(f + 1),
      bootId: "bench-boot",
      partition: 0,
      bootToRealtimeNs: 1_700_000_000_000_000_000n,
      sealedUnixNs: BigInt(Date.now()) * 1_000_000n,
      records: records.slice(f * RECORDS_PER_FRAME, (f + 1) * RECORDS_PER_FRAME),
    }),
  );
}

const newMetrics = (spec: string): HubbleMetrics =>
  new HubbleMetrics({
    specs: parseMetricsSpec("bench", spec),
    log: createLogger("bench", "silent"),
  });

/** CPU ns per unit of `step` (which returns the units it did), after a warm-up. */
function cpuNsPer(step: () => number): number {
  const warmEnd = performance.now() + WARMUP_MS;
  while (performance.now() < warmEnd) step();
  Bun.gc(true);
  const cpu0 = process.cpuUsage();
  let units = 0;
  const start = performance.now();
  while (performance.now() - start < MEASURE_MS) units += step();
  const cpu = process.cpuUsage(cpu0);
  return ((cpu.user + cpu.system) * 1000) / units;
}

/** CPU ns per flow of `observe` with the handlers of `spec`, over `batches` in turn. */
function observeNsPerFlow(spec: string, batches: readonly FlowBatch[]): number {
  const metrics = newMetrics(spec);
  let i = 0;
  return cpuNsPer(() => {
    const b = batches[i++ % batches.length];
    if (b === undefined) return 0;
    metrics.observe(b);
    return b.responses.length;
  });
}

/** Runs the Hubble metrics micro-bench and prints its figures. */
export function runHubbleMetricsBench(): void {
  const frames = mixFrames();
  const deps = registryDeps(MIX_ENDPOINTS);
  const batches = frames.map((f) => processFrame(f, deps).batch);
  const plain = HANDLERS.join(",");
  const withPods = HANDLERS.map(
    (h) => `${h}${h.includes(":") ? ";" : ":"}sourceContext=pod;destinationContext=pod`,
  ).join(",");
  emit(BENCH, "observe_cold_ns_per_flow", observeNsPerFlow(plain, batches), "ns");
  emit(BENCH, "observe_cold_ns_per_flow_pod_context", observeNsPerFlow(withPods, batches), "ns");
  for (const [suffix, spec] of [
    ["", plain],
    ["_pod_context", withPods],
  ] as const) {
    const metrics = newMetrics(spec);
    const first = batches[0];
    if (first === undefined) return;
    emit(
      BENCH,
      `stage_ns_per_flow${suffix}`,
      cpuNsPer(() => {
        metrics.stage(first);
        return first.responses.length;
      }),
      "ns",
    );
    const staged = batches.map((b) => metrics.stage(b));
    let i = 0;
    emit(
      BENCH,
      `commit_ns_per_flow${suffix}`,
      cpuNsPer(() => {
        const k = i++ % staged.length;
        const s = staged[k];
        if (s !== undefined) metrics.commit(s);
        return batches[k]?.responses.length ?? 0;
      }),
      "ns",
    );
  }
}
