/**
 * `bun run bench [-- --only=decode,collector,pipeline]`: Periscope's benches. Prints one
 * JSON line per figure, {"bench","metric","value","unit"}, on stdout; diagnostics go to
 * stderr. Needs root and bpf/build/trace.bpf.o.
 *
 * - decode-*: the enricher's per-frame work and the FlowBatch wire cost, one core.
 * - enricher-*: the enricher on a real-traffic capture (HTTP, DNS, bulk TCP, ICMP, UDP):
 *   flows/s and CPU-s per million flows of the reference and fast frame paths on one core,
 *   and of one and two enricher processes over JetStream (bench/enricher.ts).
 * - hubble-metrics: CPU per flow of the enricher's Hubble metrics (`--metrics`), one core
 *   (bench/hubble-metrics.ts).
 * - datapath-kernel: the trace program's ns/packet per aggregation level vs an empty TC
 *   program, and ring buffer reserve vs output (bench/datapath-kernel.ts).
 * - syn74-*, full1514-*: kernel → collector → NATS (bench/collector.ts).
 * - datapath-*: kernel → collector → JetStream sustained for 10 s at a fixed rate, 3 runs
 *   per capture length, with exact accounting (bench/datapath.ts).
 * - traffic-*: real traffic between two namespaces (ping -f, iperf3, curl): pipeline
 *   delivery per aggregation level, events per 1000 packets, iperf3 throughput with and
 *   without Periscope and tcpdump, capture fraction at stepped packet rates (bench/traffic.ts).
 * - pipeline-*: kernel → collector → enricher → observer → GetFlows follow client at
 *   several rates, with latency and loss accounting (bench/pipeline.ts).
 * - transport-*: the pipeline's two hops on core NATS vs JetStream (file, memory):
 *   throughput, latency, loss (bench/transport.ts).
 * - recorder-*: the recorder vs `tcpdump -w` with the equivalent filter on one veth at
 *   stepped UDP rates: captured fraction, losses, CPU per million packets (bench/recorder.ts).
 * - observer-follow-*: GetFlows follow streams to a counting client: flows/s and observer
 *   CPU µs/flow at 2 k and 50 k flows/s, a 200,000-flow catch-up over gRPC vs the Connect
 *   handler, the client alone (bench/observer-follow.ts).
 * - observer-ring-*: RSS of a 1,000,000-flow observer ring, filtered GetFlows times over it
 *   (p50/max), fill rate (bench/observer-ring.ts).
 * - netflow-*: flow export (Periscope, softflowd, pmacctd) on one veth at stepped UDP rates
 *   and TCP: packets and bytes accounted / sent, CPU per million packets (bench/netflow.ts).
 * - flow-kernel-*: what flow accounting adds to the trace program per packet (table off,
 *   on, full), in the kernel (bench/flow-kernel.ts).
 * - discovery-*: attach latency and idle CPU with 200 watched namespaces, rtnetlink
 *   notifications vs `ip monitor` children vs polling (bench/discovery.ts).
 * - ui-*: the web UI in headless Chromium following 5,000 flows/s for 20 s: frame time, long
 *   tasks, event-loop lag p50/p99 in the page, flows/s shown vs sent, lost events shown by
 *   where vs the observer's count (bench/ui.ts).
 *
 * Every program, child process and the nats-server it starts is ended before it exits,
 * also on failure and on SIGINT/SIGTERM.
 */

import { TraceProgram } from "@periscope/bpf";
import { startLocalNats } from "@periscope/devstack";
import { runCollectorBench } from "./collector.ts";
import { runDatapathBench } from "./datapath.ts";
import { runDatapathKernelBench } from "./datapath-kernel.ts";
import { runDecodeBench } from "./decode.ts";
import { runDiscoveryBench } from "./discovery.ts";
import { runEnricherBench } from "./enricher.ts";
import { runFlowKernelBench } from "./flow-kernel.ts";
import { runHubbleMetricsBench } from "./hubble-metrics.ts";
import { runNetflowBench } from "./netflow.ts";
import { runObserverFollowBench } from "./observer-follow.ts";
import { runObserverRingBench } from "./observer-ring.ts";
import { runPipelineBench } from "./pipeline.ts";
import { runProcessBench } from "./process.ts";
import { runProcessLookupBench } from "./process-lookup.ts";
import { Teardown } from "./procs.ts";
import { runRecorderBench } from "./recorder.ts";
import { runTrafficBench } from "./traffic.ts";
import { runTransportBench } from "./transport.ts";
import { runUiBench } from "./ui.ts";

const PARTS = [
  "decode",
  "enricher",
  "hubble-metrics",
  "kernel",
  "collector",
  "pipeline",
  "transport",
  "discovery",
  "datapath",
  "traffic",
  "recorder",
  "observer-ring",
  "observer-follow",
  "netflow",
  "flow-kernel",
  "process",
  "process-lookup",
  "ui",
] as const;
type Part = (typeof PARTS)[number];

/** A command line the bench does not understand. */
class BenchUsageError extends Error {
  override name = "BenchUsageError";
}

function selectedParts(argv: readonly string[]): Set<Part> {
  const only = argv.find((a) => a.startsWith("--only="));
  if (argv.some((a) => !a.startsWith("--only="))) {
    throw new BenchUsageError(
      `unknown arguments: ${argv.join(" ")} (use --only=${PARTS.join(",")})`,
    );
  }
  if (only === undefined) return new Set(PARTS);
  const names = only.slice("--only=".length).split(",");
  const parts = new Set<Part>();
  for (const n of names) {
    const part = PARTS.find((p) => p === n);
    if (part === undefined) throw new BenchUsageError(`unknown part "${n}" (${PARTS.join(", ")})`);
    parts.add(part);
  }
  return parts;
}

/** Set by SIGINT/SIGTERM: the exit code is then 130 whatever the bench was doing. */
let interrupted = false;

async function main(): Promise<void> {
  const parts = selectedParts(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new BenchUsageError("needs root (bpf, BPF_PROG_TEST_RUN)");
  const teardown = new Teardown();
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = true;
    process.stderr.write(`bench: ${signal}, cleaning up\n`);
    teardown.run().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const started = performance.now();
  try {
    if (parts.has("decode")) runDecodeBench();
    if (parts.has("hubble-metrics")) runHubbleMetricsBench();
    if (parts.has("observer-ring")) await runObserverRingBench();
    if (parts.has("observer-follow")) await runObserverFollowBench(teardown);
    if (parts.has("ui")) await runUiBench(teardown);
    if (parts.has("kernel")) await runDatapathKernelBench();
    if (parts.has("flow-kernel")) await runFlowKernelBench();
    if (parts.has("process")) await runProcessBench();
    if (parts.has("process-lookup")) runProcessLookupBench();
    const needNats = [
      "enricher",
      "collector",
      "pipeline",
      "transport",
      "discovery",
      "datapath",
      "traffic",
      "recorder",
      "netflow",
    ];
    if (needNats.every((p) => !parts.has(p as Part))) {
      return;
    }
    const nats = await startLocalNats({});
    teardown.push(() => nats.stop());
    if (parts.has("enricher")) await runEnricherBench(nats, teardown);
    if (parts.has("collector")) await runCollectorBench(nats);
    if (parts.has("transport")) await runTransportBench(nats);
    if (parts.has("datapath")) await runDatapathBench(nats);
    if (parts.has("traffic")) await runTrafficBench(nats, teardown);
    if (parts.has("recorder")) await runRecorderBench(nats, teardown);
    if (parts.has("netflow")) await runNetflowBench(nats, teardown);
    if (parts.has("discovery")) await runDiscoveryBench(nats, teardown);
    if (parts.has("pipeline")) {
      const programs = new Set<TraceProgram>();
      teardown.push(() => {
        for (const p of programs) p.close();
      });
      await runPipelineBench(nats, teardown, () => {
        const p = TraceProgram.load({ captureLen: 128 });
        programs.add(p);
        return p;
      });
    }
  } finally {
    await teardown.run();
    process.stderr.write(`bench: done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  }
}

/** Resolves once everything written to stdout so far has been handed to the OS. */
const stdoutFlushed = (): Promise<void> => new Promise((r) => process.stdout.write("", () => r()));

// Exit explicitly: stop() grace timers of already-stopped children would keep the loop
// alive for seconds after everything is cleaned up.
main().then(
  async () => {
    await stdoutFlushed();
    process.exit(interrupted ? 130 : 0);
  },
  async (err: unknown) => {
    process.stderr.write(
      `bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    await stdoutFlushed();
    process.exit(interrupted ? 130 : 1);
  },
);
