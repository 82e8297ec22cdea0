/**
 * Real traffic between two test namespaces joined by a veth pair, Periscope attached to
 * the veth end in the first (the collector in this process, its program from
 * bpf/build/trace.bpf.o):
 *
 * - traffic-ping-<agg>: `ping -f` for 5 s through the whole pipeline (enricher, observer
 *   and a GetFlows follow client as child processes): packets, kernel events/s,
 *   forwarded, kernel lost, what the follow client received.
 * - traffic-events-<workload>-<agg>: events per 1000 packets on the veth at every
 *   aggregation level, for an iperf3 TCP transfer and a curl loop.
 * - traffic-iperf3-<mode>: iperf3 TCP throughput in one run, side by side: no program,
 *   Periscope at none, at medium, `tcpdump -w /dev/null`.
 * - traffic-rate-<pps>-<tool>: iperf3 UDP at stepped packet rates: fraction of the
 *   packets reported by Periscope (aggregation none) and captured by tcpdump, and the
 *   CPU time each spent per million packets (user + system of its process).
 *
 * The collector runs with kernel drop reporting off: drops come from the whole machine.
 */

import { connectBus, RAW_STREAM } from "@periscope/bus";
import { type LocalNats, runOk } from "@periscope/devstack";
import { createVethPair, type VethPair } from "@periscope/testing";
import pino from "pino";
import { type Collector, startCollector } from "../services/collector/src/collector.ts";
import { parseConfig } from "../services/collector/src/config.ts";
import { type FollowChild, startDownstream, type Teardown } from "./procs.ts";
import { emit, processCpuMs, until } from "./report.ts";
import { type Child, nsSpawn, startTcpdump, tcpdumpCounts, tcpdumpOutput } from "./tcpdump.ts";

const AGGREGATIONS = ["none", "low", "medium", "maximum"] as const;
type Aggregation = (typeof AGGREGATIONS)[number];
const OBSERVER_NODE = "bench-traffic-observer";
const HTTP_PORT = 8080;
const IPERF_PORT = 5201;

const log = pino({ level: "warn", base: { service: "bench" } }, pino.destination(2));

/** Packets through the veth end Periscope watches, both directions. */
async function vethPackets(pair: VethPair): Promise<number> {
  const out = await runOk(["ip", "-n", pair.nsA, "-s", "-j", "link", "show", pair.ifA]);
  const [link] = JSON.parse(out) as {
    stats64: { rx: { packets: number }; tx: { packets: number } };
  }[];
  if (link === undefined) throw new Error(`no link ${pair.ifA} in ${pair.nsA}`);
  return link.stats64.rx.packets + link.stats64.tx.packets;
}

async function stopChild(p: ReturnType<typeof Bun.spawn>): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill("SIGTERM");
  const done = await Promise.race([p.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
  if (!done) {
    p.kill("SIGKILL");
    await p.exited;
  }
}

async function startPeriscope(
  nats: LocalNats,
  pair: VethPair,
  node: string,
  aggregation: Aggregation,
): Promise<Collector> {
  const config = parseConfig(
    [
      `--nats-url=${nats.url}`,
      `--node-name=${node}`,
      `--interfaces=${pair.nsA}/${pair.ifA}`,
      "--ops-addr=127.0.0.1:0",
      `--aggregation=${aggregation}`,
      // Kernel drops are machine-wide (other work on the host) and share the ring: off, so
      // the figures are about the veth's packets.
      "--drops=off",
      "--log-level=warn",
    ],
    {},
  );
  const c = await startCollector(config, { log });
  if (c.attached().length !== 1) {
    await c.stop();
    throw new Error(`collector attached ${JSON.stringify(c.attached())}, wanted ${pair.ifA}`);
  }
  return c;
}

/** Records the kernel program produced for a collector so far: read or lost in the ring. */
function kernelEvents(c: Collector): number {
  const st = c.stats();
  return st.eventsRead + st.kernelLost;
}

/** Runs `iperf3 -c` from nsA for `seconds`; returns its JSON summary's numbers. */
async function iperf3(
  pair: VethPair,
  args: string[],
): Promise<{ bitsPerSecond: number; packets: number; lostPackets: number }> {
  const out = await runOk([
    "ip",
    "netns",
    "exec",
    pair.nsA,
    "iperf3",
    "-c",
    pair.ipB,
    "-p",
    String(IPERF_PORT),
    "-J",
    ...args,
  ]);
  const j = JSON.parse(out) as {
    end: {
      sum_received?: { bits_per_second: number };
      sum?: { bits_per_second: number; packets?: number; lost_packets?: number };
    };
  };
  const sum = j.end.sum;
  return {
    bitsPerSecond: j.end.sum_received?.bits_per_second ?? sum?.bits_per_second ?? 0,
    packets: sum?.packets ?? 0,
    lostPackets: sum?.lost_packets ?? 0,
  };
}

async function purgeRaw(nats: LocalNats): Promise<void> {
  const bus = await connectBus({ url: nats.url, name: "bench-traffic-purge", log });
  try {
    const jsm = await bus.jsm();
    await jsm.streams.purge(RAW_STREAM).catch(() => undefined);
  } finally {
    await bus.close();
  }
}

/** b: ping -f through the whole pipeline at `aggregation`. */
async function pingThroughPipeline(
  nats: LocalNats,
  pair: VethPair,
  follow: FollowChild,
  aggregation: Aggregation,
): Promise<void> {
  const node = `bench-traffic-ping-${aggregation}`;
  const c = await startPeriscope(nats, pair, node, aggregation);
  const bench = `traffic-ping-${aggregation}`;
  const lapped = async (): Promise<number> =>
    (await follow.snapshot())[OBSERVER_NODE]?.lost.HUBBLE_RING_BUFFER ?? 0;
  try {
    const lapped0 = await lapped();
    const p0 = await vethPackets(pair);
    const t0 = performance.now();
    await runOk(["ip", "netns", "exec", pair.nsA, "ping", "-f", "-q", "-w", "5", pair.ipB]);
    const seconds = (performance.now() - t0) / 1000;
    const packets = (await vethPackets(pair)) - p0;
    await c.stop();
    const st = c.stats();
    let last = -1;
    let stableSince = performance.now();
    await until(
      "follow client settles",
      performance.now(),
      async () => {
        const n = (await follow.snapshot())[node];
        const seen =
          (n?.flows ?? 0) +
          Object.values(n?.lost ?? {}).reduce((a, b) => a + b, 0) +
          (await lapped()) -
          lapped0;
        if (seen !== last) stableSince = performance.now();
        last = seen;
        return (
          seen >= st.eventsPublished + st.kernelLost || performance.now() - stableSince > 10_000
        );
      },
      120_000,
      200,
    );
    const deliveredS = (performance.now() - t0) / 1000;
    const n = (await follow.snapshot())[node];
    emit(bench, "packets_on_veth", packets, "packets");
    emit(bench, "packets_per_s", packets / seconds, "packets/s");
    emit(bench, "kernel_events_per_s", (st.eventsRead + st.kernelLost) / seconds, "events/s");
    emit(bench, "forwarded", st.eventsPublished, "events");
    emit(bench, "kernel_lost", st.kernelLost, "events");
    emit(bench, "collector_lost", st.queueLost + st.publishLost, "events");
    emit(bench, "follow_flows", n?.flows ?? 0, "flows");
    emit(bench, "follow_lapped_in_observer_ring", (await lapped()) - lapped0, "events");
    emit(bench, "follow_flows_per_s_since_start", (n?.flows ?? 0) / deliveredS, "flows/s");
    emit(
      bench,
      "follow_lost_events",
      Object.values(n?.lost ?? {}).reduce((a, b) => a + b, 0),
      "events",
    );
  } finally {
    await c.stop();
  }
}

/** c: events per 1000 packets of `workload` at every aggregation level. */
async function eventsPerPackets(
  nats: LocalNats,
  pair: VethPair,
  workload: "iperf3" | "curl",
): Promise<void> {
  for (const agg of AGGREGATIONS) {
    const c = await startPeriscope(nats, pair, `bench-traffic-events-${workload}-${agg}`, agg);
    try {
      const p0 = await vethPackets(pair);
      if (workload === "iperf3") await iperf3(pair, ["-t", "2"]);
      else {
        for (let i = 0; i < 100; i++) {
          await runOk([
            "ip",
            "netns",
            "exec",
            pair.nsA,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            `http://${pair.ipB}:${HTTP_PORT}/`,
          ]);
        }
      }
      const packets = (await vethPackets(pair)) - p0;
      await c.stop();
      const events = kernelEvents(c);
      const bench = `traffic-events-${workload}-${agg}`;
      emit(bench, "packets_on_veth", packets, "packets");
      emit(bench, "kernel_events", events, "events");
      emit(bench, "events_per_1000_packets", (1000 * events) / Math.max(1, packets), "events");
    } finally {
      await c.stop();
    }
    await purgeRaw(nats);
  }
}

/** d: iperf3 throughput with nothing, Periscope at none and medium, tcpdump; modes interleaved, `rounds` times. */
async function iperf3SideBySide(nats: LocalNats, pair: VethPair, rounds = 3): Promise<void> {
  const modes = ["no-program", "periscope-none", "periscope-medium", "tcpdump"] as const;
  const results = new Map<string, number[]>(modes.map((m) => [m, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const mode of modes) {
      let c: Collector | undefined;
      let dump: ReturnType<typeof Bun.spawn> | undefined;
      try {
        if (mode === "periscope-none" || mode === "periscope-medium") {
          const agg = mode === "periscope-none" ? "none" : "medium";
          c = await startPeriscope(nats, pair, `bench-traffic-iperf3-${mode}-${round}`, agg);
        }
        if (mode === "tcpdump") dump = await startDevNullTcpdump(pair, []);
        const r = await iperf3(pair, ["-t", "3"]);
        const gbps = r.bitsPerSecond / 1e9;
        results.get(mode)?.push(gbps);
        emit(`traffic-iperf3-${mode}`, `throughput_round${round}`, gbps, "Gbit/s");
      } finally {
        await c?.stop();
        if (dump !== undefined) await stopChild(dump);
      }
      await purgeRaw(nats);
    }
  }
  const base = median(results.get("no-program") ?? []);
  for (const mode of modes) {
    const m = median(results.get(mode) ?? []);
    emit(`traffic-iperf3-${mode}`, "throughput_median", m, "Gbit/s");
    emit(`traffic-iperf3-${mode}`, "throughput_vs_no_program", m / base, "ratio");
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor((s.length - 1) / 2)] as number);
}

/** tcpdump writing to /dev/null on ifA, once it says it is listening. */
function startDevNullTcpdump(pair: VethPair, filter: string[]): Promise<Child> {
  return startTcpdump(pair.nsA, pair.ifA, "/dev/null", 128, filter);
}

/**
 * e: stepped UDP packet rates (iperf3 -u, 64-byte datagrams): the fraction of the packets
 * on the veth that Periscope (aggregation none) reported and that tcpdump captured, and
 * the CPU time of each (its process, user + system; the BPF program's own cost runs in
 * the sender's softirq and is in neither) per million packets.
 */
async function steppedRates(nats: LocalNats, pair: VethPair): Promise<void> {
  const rates = [20_000, 50_000, 100_000, 200_000];
  const payload = 64;
  for (const pps of rates) {
    const args = ["-u", "-l", String(payload), "-b", String(pps * payload * 8), "-t", "3"];
    const bench = `traffic-rate-${pps}`;
    const c = await startPeriscope(nats, pair, `bench-traffic-rate-${pps}`, "none");
    try {
      const p0 = await vethPackets(pair);
      const cpu0 = processCpuMs(process.pid) ?? 0;
      const t0 = performance.now();
      await iperf3(pair, args);
      const seconds = (performance.now() - t0) / 1000;
      await c.stop();
      const cpuMs = (processCpuMs(process.pid) ?? 0) - cpu0;
      const packets = Math.max(1, (await vethPackets(pair)) - p0);
      const st = c.stats();
      emit(bench, "periscope_packets_on_veth_per_s", packets / seconds, "packets/s");
      emit(bench, "periscope_reported_fraction", st.eventsPublished / packets, "ratio");
      emit(bench, "periscope_kernel_lost", st.kernelLost, "events");
      emit(bench, "periscope_cpu_s_per_mpkt", cpuMs / 1000 / (packets / 1e6), "s");
    } finally {
      await c.stop();
    }
    await purgeRaw(nats);

    const dump = await startDevNullTcpdump(pair, []);
    try {
      const p0 = await vethPackets(pair);
      const cpu0 = processCpuMs(dump.pid) ?? 0;
      const t0 = performance.now();
      await iperf3(pair, args);
      const seconds = (performance.now() - t0) / 1000;
      const cpuMs = (processCpuMs(dump.pid) ?? 0) - cpu0;
      dump.kill("SIGINT");
      await dump.exited;
      const packets = Math.max(1, (await vethPackets(pair)) - p0);
      const counts = tcpdumpCounts(await tcpdumpOutput(dump));
      emit(bench, "tcpdump_packets_on_veth_per_s", packets / seconds, "packets/s");
      emit(bench, "tcpdump_captured_fraction", counts.captured / packets, "ratio");
      emit(bench, "tcpdump_dropped", counts.dropped, "packets");
      emit(bench, "tcpdump_cpu_s_per_mpkt", cpuMs / 1000 / (packets / 1e6), "s");
    } finally {
      await stopChild(dump);
    }
  }
}

/** Runs every traffic figure; everything it starts is ended via `teardown` too. */
export async function runTrafficBench(nats: LocalNats, teardown: Teardown): Promise<void> {
  const pair = await createVethPair();
  teardown.push(() => pair.destroy());
  const servers = [
    nsSpawn(pair.nsB, ["iperf3", "-s", "-p", String(IPERF_PORT)]),
    nsSpawn(pair.nsB, [
      "bun",
      "-e",
      `Bun.serve({ hostname: "${pair.ipB}", port: ${HTTP_PORT}, fetch: () => new Response("ok") })`,
    ]),
  ];
  teardown.push(async () => {
    for (const s of servers) await stopChild(s);
  });
  await until(
    "iperf3 and http servers",
    performance.now(),
    async () => {
      const ok = await Promise.all([
        runOk([
          "ip",
          "netns",
          "exec",
          pair.nsA,
          "nc",
          "-z",
          "-w",
          "1",
          pair.ipB,
          String(IPERF_PORT),
        ]).then(
          () => true,
          () => false,
        ),
        runOk([
          "ip",
          "netns",
          "exec",
          pair.nsA,
          "curl",
          "-sf",
          `http://${pair.ipB}:${HTTP_PORT}/`,
        ]).then(
          () => true,
          () => false,
        ),
      ]);
      return ok.every(Boolean);
    },
    15_000,
    100,
  );

  // c, d, e: the collector alone (frames stay in the raw stream, purged between runs).
  await eventsPerPackets(nats, pair, "iperf3");
  await eventsPerPackets(nats, pair, "curl");
  await iperf3SideBySide(nats, pair);
  await steppedRates(nats, pair);

  // b: the whole pipeline.
  const { children, follow } = await startDownstream(
    nats.url,
    teardown,
    "bench-traffic-enricher",
    OBSERVER_NODE,
  );
  for (const agg of ["none", "medium"] as const) await pingThroughPipeline(nats, pair, follow, agg);
  await follow.stop();
  await children.stop();
}
