/**
 * netflow-*: flow export accounting against softflowd and pmacctd (Debian) on the same
 * veth with the same offered traffic: iperf3 UDP with 64-byte datagrams (the packet
 * blaster) at stepped rates up to unlimited, `ping -f` (NetObserv's own comparison), then
 * iperf3 TCP unlimited. Per run and tool:
 * packets and L3 bytes of the measured flow(s) as the tool exported them / as sent
 * (iperf3's own datagram count for UDP, ping's for ICMP; the veth's TX counters for TCP), and CPU-seconds
 * per million packets on the interface of the tool's processes (Periscope: the collector
 * process, kernel table + IPFIX to nfcapd; softflowd: IPFIX to nfcapd; pmacctd: core and
 * print plugin writing CSV). Kernel work in softirq (Periscope's TC program, the tools'
 * packet sockets) is in no process; the machine's busy CPU per million is given beside.
 *
 * softflowd and pmacctd read through libpcap's TPACKET_V3 ring, which hands packets over
 * a block at a time: after each run some filler pings (other flows) push the last block
 * through before the tools are told to export. Tools that are not installed are skipped
 * with a message.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type LocalNats, runOk } from "@periscope/devstack";
import { type NfdumpFlow, startNfcapd } from "@periscope/netflow/testing/nfcapd.ts";
import { createVethPair, type VethPair } from "@periscope/testing";
import type { Teardown } from "./procs.ts";
import { emit, machineCpuMs, processCpuMs, scrapeMetrics, until } from "./report.ts";
import { nsSpawn, startIperf3Server, stopChild } from "./tcpdump.ts";

const PORT = 5201;
const PAYLOAD = 64;
/** IPv4 + UDP headers + payload: the L3 bytes of one datagram. */
const UDP_L3 = 20 + 8 + PAYLOAD;
const SECONDS = 3;
/** Offered datagrams per second; 0 = as fast as iperf3 goes. */
const UDP_RATES = [100_000, 250_000, 0];
type Tool = "periscope" | "softflowd" | "pmacctd";
/** UDP blaster, `ping -f` (the NetObserv comparison), iperf3 TCP. */
type Kind = "udp" | "icmp" | "tcp";
/** A second address on the measured device: the filler pings come from it. */
const FILLER_IP = "10.231.0.3";
/** IPv4 + ICMP header + ping's 56 bytes. */
const ICMP_L3 = 84;
const ROOT = join(import.meta.dir, "..");

/** Counts of the measured flow as one tool exported them. */
interface Accounted {
  packets: number;
  bytes: number;
}

/** One traffic run: what was offered and the interface counters around it. */
interface Offered {
  kind: Kind;
  label: string;
  /** Packets and L3 bytes of the measured flow(s) as sent. */
  packets: number;
  bytes: number;
  /** Packets through the interface in both directions (CPU per million uses these). */
  ifPackets: number;
}

const STOP_GRACE_MS = 10_000;
const stop = (p: ReturnType<typeof Bun.spawn>, signal: NodeJS.Signals): Promise<void> =>
  stopChild(p, signal, STOP_GRACE_MS);

/** CPU ms of `pid` and every descendant alive now. */
function treeCpuMs(pid: number): number {
  let total = processCpuMs(pid) ?? 0;
  let children: string[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/);
  } catch {
    return total;
  }
  for (const c of children) if (c !== "") total += treeCpuMs(Number(c));
  return total;
}

async function linkCounters(pair: VethPair): Promise<{ tx: number; txBytes: number; rx: number }> {
  const j = JSON.parse(
    await runOk(["ip", "-n", pair.nsA, "-s", "-j", "link", "show", pair.ifA]),
  ) as {
    stats64: { tx: { packets: number; bytes: number }; rx: { packets: number } };
  }[];
  const s = j[0]?.stats64;
  if (s === undefined) throw new Error(`no counters for ${pair.ifA}`);
  return { tx: s.tx.packets, txBytes: s.tx.bytes, rx: s.rx.packets };
}

/** Runs one iperf3 client; returns what was offered. */
async function offer(pair: VethPair, kind: Kind, pps: number): Promise<Offered> {
  const before = await linkCounters(pair);
  if (kind === "icmp") {
    // ping -f -w: as many echo requests as the replies allow, for SECONDS.
    const out = await runOk(
      ["ip", "netns", "exec", pair.nsA, "ping", "-f", "-q", "-w", String(SECONDS), pair.ipB],
      { timeoutMs: 60_000 },
    );
    const sent = Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? Number.NaN);
    const after = await linkCounters(pair);
    const ifPackets = after.tx - before.tx + after.rx - before.rx;
    return { kind, label: "ping-flood", packets: sent, bytes: sent * ICMP_L3, ifPackets };
  }
  const argv = [
    "ip",
    "netns",
    "exec",
    pair.nsA,
    "iperf3",
    "-c",
    pair.ipB,
    "-p",
    String(PORT),
    "-J",
  ];
  if (kind === "udp") argv.push("-u", "-l", String(PAYLOAD), "-b", String(pps * PAYLOAD * 8));
  argv.push("-t", String(SECONDS));
  const out = JSON.parse(await runOk(argv, { timeoutMs: 60_000 })) as {
    end: { sum?: { packets?: number } };
  };
  const after = await linkCounters(pair);
  const tx = after.tx - before.tx;
  const ifPackets = tx + after.rx - before.rx;
  const label = kind === "tcp" ? "tcp-max" : `udp-${pps === 0 ? "max" : pps}`;
  if (kind === "udp") {
    // iperf3's count leaves out the one 4-byte datagram its client sends to open the test.
    const sent = out.end.sum?.packets ?? 0;
    return { kind, label, packets: sent + 1, bytes: sent * UDP_L3 + 20 + 8 + 4, ifPackets };
  }
  // Every IPv4 packet leaving ifA during a TCP run belongs to the iperf3 connections
  // (the neighbour entry is permanent: no ARP); L3 bytes = bytes − Ethernet headers.
  return { kind, label, packets: tx, bytes: after.txBytes - before.txBytes - 14 * tx, ifPackets };
}

/** Filler traffic of other flows: pushes libpcap's last block through. */
async function filler(pair: VethPair): Promise<void> {
  await runOk([
    ...["ip", "netns", "exec", pair.nsA, "ping", "-f", "-c", "5000", "-q"],
    ...["-I", FILLER_IP, pair.ipB],
  ]);
}

/** Whether a flow (src, dst, protocol, destination port or ICMP type) is measured traffic. */
function measured(kind: Kind, pair: VethPair) {
  return (src: string, dst: string, proto: number, dportOrType: number): boolean => {
    if (src !== pair.ipA || dst !== pair.ipB) return false;
    if (kind === "icmp") return proto === 1 && dportOrType === 8;
    return proto === (kind === "udp" ? 17 : 6) && dportOrType === PORT;
  };
}

function sumNfdump(flows: NfdumpFlow[], kind: Kind, pair: VethPair): Accounted {
  const want = measured(kind, pair);
  let packets = 0;
  let bytes = 0;
  for (const f of flows) {
    const portOrType = f.proto === 1 ? (f.icmp_type ?? -1) : (f.dst_port ?? -1);
    if (!want(f.src4_addr ?? "", f.dst4_addr ?? "", f.proto, portOrType)) continue;
    packets += f.in_packets;
    bytes += f.in_bytes;
  }
  return { packets, bytes };
}

/** Runs `kind` traffic with one tool watching ifA; returns its accounting and CPU. */
async function runTool(
  tool: Tool,
  pair: VethPair,
  nats: LocalNats,
  dir: string,
  kind: Kind,
  pps: number,
): Promise<{
  offered: Offered;
  accounted: Accounted;
  cpuMs: number;
  busyMs: number;
  /** IPFIX messages nfcapd found missing (sequence number gaps); undefined for pmacctd. */
  sequenceErrors?: number;
  /** The collector's own loss counters (Periscope only). */
  collector?: { fallbackPackets: number; fallbackLost: number; exportDropped: number };
}> {
  const nf =
    tool === "pmacctd"
      ? undefined
      : await startNfcapd(tool === "softflowd" ? { netns: pair.nsA } : {});
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  let opsPort = 0;
  const csv = join(dir, `pmacct-${kind}-${pps}.csv`);
  try {
    if (tool === "periscope") {
      opsPort = await freePort();
      proc = Bun.spawn(["bun", "run", join(ROOT, "services/collector/src/main.ts")], {
        stdout: "ignore",
        stderr: "inherit",
        env: {
          ...process.env,
          PERISCOPE_NATS_URL: nats.url,
          PERISCOPE_NODE_NAME: `bench-netflow-${kind}-${pps}`,
          PERISCOPE_INTERFACES: `${pair.nsA}/${pair.ifA}`,
          PERISCOPE_OPS_ADDR: `127.0.0.1:${opsPort}`,
          PERISCOPE_AGGREGATION: "maximum",
          PERISCOPE_DROPS: "off",
          PERISCOPE_LOG_LEVEL: "warn",
          PERISCOPE_FLOW_EXPORT: "on",
          PERISCOPE_IPFIX_COLLECTOR: `127.0.0.1:${nf?.port}`,
        },
      });
      await until(
        "collector ready",
        performance.now(),
        async () => {
          if (proc?.exitCode !== null) throw new Error("collector exited at start");
          return fetch(`http://127.0.0.1:${opsPort}/readyz`).then(
            (r) => r.ok,
            () => false,
          );
        },
        30_000,
        100,
      );
      // readyz comes a little before the flow table counts (the first ~150 ms of packets
      // are missing): measure from when probe pings show up in the user-space cache.
      await until(
        "flow accounting live",
        performance.now(),
        async () => {
          await runOk([
            ...["ip", "netns", "exec", pair.nsA, "ping", "-c", "1", "-q"],
            ...["-I", FILLER_IP, pair.ipB],
          ]);
          return (await scrapeMetrics(opsPort)).some(
            (x) => x.name.endsWith("netflow_cached_flows") && x.value > 0,
          );
        },
        15_000,
        200,
      );
    } else if (tool === "softflowd") {
      proc = nsSpawn(pair.nsA, [
        ...["softflowd", "-d", "-i", pair.ifA, "-n", `127.0.0.1:${nf?.port}`, "-v", "10"],
        ...["-c", join(dir, "softflowd.ctl"), "-p", join(dir, "softflowd.pid")],
      ]);
      await until(
        "softflowd control socket",
        performance.now(),
        () =>
          runOk(["softflowctl", "-c", join(dir, "softflowd.ctl"), "statistics"]).then(
            () => true,
            () => false,
          ),
        10_000,
        50,
      );
    } else {
      const conf = join(dir, "pmacctd.conf");
      writeFileSync(
        conf,
        [
          "daemonize: false",
          `pcap_interface: ${pair.ifA}`,
          "aggregate: src_host,dst_host,src_port,dst_port,proto",
          "plugins: print",
          "print_output: csv",
          `print_output_file: ${csv}`,
          "print_output_file_append: true",
          "print_refresh_time: 1",
          // pmacct's advice for high rates: a larger core → plugin pipe than the default.
          "plugin_pipe_size: 102400000",
          "plugin_buffer_size: 102400",
          "",
        ].join("\n"),
      );
      proc = nsSpawn(pair.nsA, ["pmacctd", "-f", conf]);
      const pid = proc.pid;
      await until(
        "pmacctd plugin",
        performance.now(),
        () =>
          treeCpuMs(pid) >= 0 &&
          readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim() !== "",
        10_000,
        50,
      );
    }
    const pid = proc.pid;
    const cpu0 = treeCpuMs(pid);
    const m0 = machineCpuMs();
    const offered = await offer(pair, kind, pps);
    await filler(pair);
    const cpuMs = treeCpuMs(pid) - cpu0;
    const busyMs = machineCpuMs().busy - m0.busy;
    if (tool === "periscope") {
      // Where the collector says packets went: fallback, lost, export drops (before its
      // shutdown eviction, which exports the rest).
      const samples = await scrapeMetrics(opsPort);
      const m = (name: string) =>
        samples.filter((x) => x.name.endsWith(name)).reduce((n, x) => n + x.value, 0);
      await stop(proc, "SIGTERM");
      const got = await (nf as NonNullable<typeof nf>).stop();
      return {
        offered,
        accounted: sumNfdump(got.flows, kind, pair),
        cpuMs,
        busyMs,
        sequenceErrors: got.totals.sequenceErrors,
        collector: {
          fallbackPackets: m("netflow_fallback_packets_total"),
          fallbackLost: m("netflow_fallback_lost_total"),
          exportDropped: m("netflow_export_dropped_total"),
        },
      };
    } else if (tool === "softflowd") {
      await runOk(["softflowctl", "-c", join(dir, "softflowd.ctl"), "shutdown"]);
      await stop(proc, "SIGTERM");
      const got = await (nf as NonNullable<typeof nf>).stop();
      return {
        offered,
        accounted: sumNfdump(got.flows, kind, pair),
        cpuMs,
        busyMs,
        sequenceErrors: got.totals.sequenceErrors,
      };
    } else {
      // pmacctd writes its cache once per print_refresh_time and not at exit: wait until a
      // write holds filler packets (processed after every measured one), then stop it.
      await until(
        "pmacctd writing the filler pings",
        performance.now(),
        () => existsSync(csv) && icmpPackets(readFileSync(csv, "utf8")) >= 1000,
        20_000,
        200,
      );
      await stop(proc, "SIGINT");
      return {
        offered,
        accounted: sumPmacct(readFileSync(csv, "utf8"), kind, pair),
        cpuMs,
        busyMs,
      };
    }
  } finally {
    if (proc !== undefined) await stop(proc, "SIGKILL");
    await nf?.kill();
  }
}

/** ICMP packets in pmacctd's CSV lines. */
function icmpPackets(text: string): number {
  let n = 0;
  for (const line of text.split("\n")) {
    const f = line.split(",");
    if (f[4] === "icmp" && f[0] === FILLER_IP) n += Number(f[5]);
  }
  return n;
}

function sumPmacct(text: string, kind: Kind, pair: VethPair): Accounted {
  const want = measured(kind, pair);
  let packets = 0;
  let bytes = 0;
  for (const line of text.split("\n")) {
    const [src, dst, , dport, proto, pk, by] = line.split(",");
    const p = proto === "udp" ? 17 : proto === "tcp" ? 6 : proto === "icmp" ? 1 : -1;
    // pmacct keys ICMP without the type: from ipA to ipB only echo requests pass.
    if (!want(src ?? "", dst ?? "", p, p === 1 ? 8 : Number(dport))) continue;
    packets += Number(pk);
    bytes += Number(by);
  }
  return { packets, bytes };
}

function installed(tool: Tool): boolean {
  if (tool === "periscope") return Bun.which("nfcapd") !== null;
  if (tool === "softflowd") return Bun.which("softflowd") !== null && Bun.which("nfcapd") !== null;
  return Bun.which("pmacctd") !== null;
}

/** Runs the netflow figures; the veth and the iperf3 server are removed via `teardown`. */
export async function runNetflowBench(nats: LocalNats, teardown: Teardown): Promise<void> {
  const tools = (["periscope", "softflowd", "pmacctd"] as const).filter((t) => {
    if (installed(t)) return true;
    process.stderr.write(
      `bench: netflow: ${t} skipped (install nfdump, softflowd and pmacct: scripts/setup.sh)\n`,
    );
    return false;
  });
  const pair = await createVethPair();
  teardown.push(() => pair.destroy());
  const dir = mkdtempSync(join(tmpdir(), "periscope-bench-netflow-"));
  teardown.push(async () => rmSync(dir, { recursive: true, force: true }));
  await runOk(["ip", "-n", pair.nsA, "link", "set", "lo", "up"]);
  await runOk(["ip", "-n", pair.nsA, "addr", "add", `${FILLER_IP}/24`, "dev", pair.ifA]);
  const macB = (
    JSON.parse(await runOk(["ip", "-n", pair.nsB, "-j", "link", "show", pair.ifB])) as {
      address: string;
    }[]
  )[0]?.address;
  if (macB === undefined) throw new Error(`no MAC for ${pair.ifB}`);
  await runOk([
    "ip",
    "-n",
    pair.nsA,
    "neigh",
    "replace",
    pair.ipB,
    "lladdr",
    macB,
    "dev",
    pair.ifA,
    "nud",
    "permanent",
  ]);
  await startIperf3Server(pair, PORT, teardown, STOP_GRACE_MS);
  const runs: [Kind, number][] = [
    ...UDP_RATES.map((r): [Kind, number] => ["udp", r]),
    ["icmp", 0],
    ["tcp", 0],
  ];
  for (const [kind, pps] of runs) {
    for (const tool of tools) {
      let r: Awaited<ReturnType<typeof runTool>>;
      try {
        r = await runTool(tool, pair, nats, dir, kind, pps);
      } catch (err) {
        process.stderr.write(
          `bench: netflow: ${tool} ${kind} ${pps}: ${err instanceof Error ? err.message : String(err)}\n`,
        );
        continue;
      }
      const bench = `netflow-${r.offered.label}`;
      const mpkt = Math.max(1, r.offered.ifPackets) / 1e6;
      emit(bench, `${tool}_sent_packets`, r.offered.packets, "packets");
      emit(bench, `${tool}_sent_per_s`, r.offered.packets / SECONDS, "packets/s");
      emit(bench, `${tool}_packets_accounted`, r.accounted.packets, "packets");
      emit(
        bench,
        `${tool}_packets_fraction`,
        r.accounted.packets / Math.max(1, r.offered.packets),
        "ratio",
      );
      emit(
        bench,
        `${tool}_bytes_fraction`,
        r.accounted.bytes / Math.max(1, r.offered.bytes),
        "ratio",
      );
      emit(bench, `${tool}_cpu_s_per_mpkt`, r.cpuMs / 1000 / mpkt, "s");
      emit(bench, `${tool}_machine_busy_s_per_mpkt`, r.busyMs / 1000 / mpkt, "s");
      if (r.collector !== undefined) {
        emit(bench, `${tool}_fallback_packets`, r.collector.fallbackPackets, "packets");
        emit(bench, `${tool}_fallback_lost`, r.collector.fallbackLost, "packets");
        emit(bench, `${tool}_export_dropped`, r.collector.exportDropped, "records");
      }
      if (r.sequenceErrors !== undefined)
        emit(bench, `${tool}_ipfix_sequence_errors`, r.sequenceErrors, "messages");
    }
  }
}
