/**
 * recorder-*: the recorder against `tcpdump -w` on the same veth, with the same offered
 * traffic (iperf3 -u, 64-byte datagrams, stepped rates up to unlimited) and the
 * equivalent filter (`udp and src A and dst B and dst port 5201`, whole packets, both
 * writing a pcap file). Per rate: packets captured / datagrams sent, packets counted lost,
 * and CPU-seconds per million datagrams of the capturing processes (Periscope: the
 * collector and a recording session in this process, trace aggregation maximum; tcpdump:
 * its process). Kernel work in the sender's softirq (the BPF filter and copy, tcpdump's
 * packet socket) is in neither; the whole machine's busy CPU per million is given beside.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectBus } from "@periscope/bus";
import { type LocalNats, runOk } from "@periscope/devstack";
import { createVethPair, type VethPair } from "@periscope/testing";
import pino from "pino";
import { startCollector } from "../services/collector/src/collector.ts";
import { parseConfig } from "../services/collector/src/config.ts";
import { RecordingSession } from "../services/recorder/src/session.ts";
import type { Teardown } from "./procs.ts";
import { emit, machineCpuMs, processCpuMs } from "./report.ts";
import {
  startIperf3Server,
  startTcpdump,
  stopChild,
  tcpdumpCounts,
  tcpdumpOutput,
} from "./tcpdump.ts";

const PORT = 5201;
const PAYLOAD = 64;
const SECONDS = 3;
/** Offered datagrams per second; 0 = as fast as iperf3 goes. */
const RATES = [50_000, 100_000, 200_000, 400_000, 0];
const log = pino({ level: "warn", base: { service: "bench" } }, pino.destination(2));

const STOP_GRACE_MS = 5000;
const stop = (p: ReturnType<typeof Bun.spawn>, signal: NodeJS.Signals): Promise<void> =>
  stopChild(p, signal, STOP_GRACE_MS);

/** Datagrams iperf3 sent at `pps` (0: unlimited) for SECONDS. */
async function blast(pair: VethPair, pps: number): Promise<number> {
  const out = await runOk([
    ...["ip", "netns", "exec", pair.nsA, "iperf3", "-c", pair.ipB, "-p", String(PORT), "-J"],
    ...["-u", "-l", String(PAYLOAD), "-b", String(pps * PAYLOAD * 8), "-t", String(SECONDS)],
  ]);
  const j = JSON.parse(out) as { end: { sum?: { packets?: number } } };
  return j.end.sum?.packets ?? 0;
}

interface Figures {
  captured: number;
  lost: number;
  cpuMs: number;
  machineBusyMs: number;
  sent: number;
}

function report(bench: string, who: string, f: Figures): void {
  const sent = Math.max(1, f.sent);
  emit(bench, `${who}_sent_per_s`, f.sent / SECONDS, "packets/s");
  emit(bench, `${who}_captured_fraction`, f.captured / sent, "ratio");
  emit(bench, `${who}_lost`, f.lost, "packets");
  emit(bench, `${who}_cpu_s_per_mpkt`, f.cpuMs / 1000 / (sent / 1e6), "s");
  emit(bench, `${who}_machine_busy_s_per_mpkt`, f.machineBusyMs / 1000 / (sent / 1e6), "s");
}

async function withPeriscope(nats: LocalNats, pair: VethPair, dir: string, pps: number) {
  const node = `bench-rec-${pps}`;
  const config = parseConfig(
    [
      `--nats-url=${nats.url}`,
      `--node-name=${node}`,
      `--interfaces=${pair.nsA}/${pair.ifA}`,
      "--ops-addr=127.0.0.1:0",
      "--aggregation=maximum",
      "--drops=off",
      "--log-level=warn",
    ],
    {},
  );
  const collector = await startCollector(config, { log });
  const bus = await connectBus({ url: nats.url, name: "bench-recorder", log });
  const lostBy: Record<string, number> = {};
  try {
    const session = await RecordingSession.start(
      {
        prefix: "bench",
        filters: [
          {
            family: 4,
            proto: 17,
            srcAddr: pair.ipA,
            srcPrefix: 32,
            dstAddr: pair.ipB,
            dstPrefix: 32,
            srcPort: 0,
            dstPort: PORT,
          },
        ],
        capLen: 65535,
        maxPackets: 0,
        maxBytes: 0,
        maxMs: 0,
      },
      {
        nc: bus.nc,
        nodes: () => [node],
        storageDir: dir,
        leaseMs: 3000,
        writeQueuePackets: 65536,
        log,
        onLost: (where, n) => {
          lostBy[where] = (lostBy[where] ?? 0) + n;
        },
      },
      () => {},
    );
    const cpu0 = processCpuMs(process.pid) ?? 0;
    const m0 = machineCpuMs();
    const sent = await blast(pair, pps);
    await session.stop("client");
    const cpuMs = (processCpuMs(process.pid) ?? 0) - cpu0;
    const machineBusyMs = machineCpuMs().busy - m0.busy;
    const s = session.stats();
    for (const [where, n] of Object.entries(lostBy))
      emit(`recorder-rate-${pps === 0 ? "max" : pps}`, `periscope_lost_${where}`, n, "packets");
    return { captured: s.packetsCaptured, lost: s.packetsLost, cpuMs, machineBusyMs, sent };
  } finally {
    await bus.close();
    await collector.stop();
  }
}

async function withTcpdump(pair: VethPair, dir: string, pps: number): Promise<Figures> {
  const dump = await startTcpdump(pair.nsA, pair.ifA, join(dir, `tcpdump-${pps}.pcap`), 0, [
    ...["udp", "and", "src", pair.ipA, "and", "dst", pair.ipB, "and", "dst", "port", String(PORT)],
  ]);
  try {
    const cpu0 = processCpuMs(dump.pid) ?? 0;
    const m0 = machineCpuMs();
    const sent = await blast(pair, pps);
    const cpuMs = (processCpuMs(dump.pid) ?? 0) - cpu0;
    const machineBusyMs = machineCpuMs().busy - m0.busy;
    await stop(dump, "SIGINT");
    const { captured, dropped } = tcpdumpCounts(await tcpdumpOutput(dump));
    return {
      captured,
      lost: dropped,
      cpuMs,
      machineBusyMs,
      sent,
    };
  } finally {
    await stop(dump, "SIGKILL");
  }
}

/** Runs the recorder figures; the veth, iperf3 server and files are removed via `teardown`. */
export async function runRecorderBench(nats: LocalNats, teardown: Teardown): Promise<void> {
  const pair = await createVethPair();
  teardown.push(() => pair.destroy());
  const dir = mkdtempSync(join(tmpdir(), "periscope-bench-rec-"));
  teardown.push(async () => rmSync(dir, { recursive: true, force: true }));
  await startIperf3Server(pair, PORT, teardown, STOP_GRACE_MS);
  for (const pps of RATES) {
    const bench = `recorder-rate-${pps === 0 ? "max" : pps}`;
    report(bench, "periscope", await withPeriscope(nats, pair, dir, pps));
    report(bench, "tcpdump", await withTcpdump(pair, dir, pps));
    for (const f of new Bun.Glob("*.pcap").scanSync(dir)) rmSync(join(dir, f));
  }
}
