/**
 * IPFIX export read back by Debian's nfcapd/nfdump: the exporter sends to a real nfcapd on
 * loopback, nfdump reads the stored file, and every flow's addresses, ports, protocol,
 * bytes, packets, times, interfaces and direction match what was exported; then end to
 * end, a real collector exports real traffic between test namespaces (ping, iperf3) and
 * nfdump's counts equal ping's, iperf3's, the device counters and the NATS records.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { fromBinary } from "@bufbuild/protobuf";
import { connect } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import {
  IpfixExporter,
  type NetflowDrop,
  NetflowExportQueue,
  type NetflowRecord,
} from "@periscope/netflow";
import { addrBytes, sampleNetflowRecord } from "@periscope/netflow/test-helpers.ts";
import {
  hasNfdump,
  type Nfcapd,
  type NfdumpFlow,
  nfdumpTimeMs,
  startNfcapd,
} from "@periscope/netflow/testing/nfcapd.ts";
import { netflowV1 } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import {
  addQuietVeth,
  createNetnsPair,
  freePort,
  linkStats,
  runOk,
  startLocalNats,
  tcFilterProgIds,
  waitFor,
} from "@periscope/testing";
import { startCollector } from "../services/collector/src/collector.ts";
import { DEFAULT_BPF_OBJECT, parseConfig } from "../services/collector/src/config.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function collector(port?: number): Promise<Nfcapd> {
  const c = await startNfcapd({ port });
  cleanups.push(() => c.kill());
  return c;
}

function addrText(b: Uint8Array): string {
  if (b.length === 4) return [...b].join(".");
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push((((b[i] ?? 0) << 8) | (b[i + 1] ?? 0)).toString(16));
  // nfdump prints the shortest form; normalise through URL parsing.
  return new URL(`http://[${words.join(":")}]/`).hostname.slice(1, -1);
}

/** The key nfdump's output and a record share: family-specific addresses and ports. */
function keyOfFlow(f: NfdumpFlow): string {
  const icmp = f.proto === 1 || f.proto === 58;
  const ports = icmp ? `${f.icmp_type}/${f.icmp_code}` : `${f.src_port}>${f.dst_port}`;
  return `${f.src4_addr ?? f.src6_addr} ${f.dst4_addr ?? f.dst6_addr} ${f.proto} ${ports} ${f.input_snmp}/${f.output_snmp}`;
}

function keyOfRecord(r: NetflowRecord): string {
  const icmp = r.proto === 1 || r.proto === 58;
  const ports = icmp ? `${r.icmpType}/${r.icmpCode}` : `${r.srcPort}>${r.dstPort}`;
  const [inIf, outIf] = r.direction === "ingress" ? [r.ifindex, 0] : [0, r.ifindex];
  return `${addrText(r.srcAddr)} ${addrText(r.dstAddr)} ${r.proto} ${ports} ${inIf}/${outIf}`;
}

/** A mix of TCP, UDP and ICMP over IPv4 and IPv6, both directions, all distinct. */
function mixedRecords(n: number): NetflowRecord[] {
  const out: NetflowRecord[] = [];
  const t0 = Date.now() - 60_000;
  for (let i = 0; i < n; i++) {
    const v6 = i % 2 === 1;
    const proto = [6, 17, v6 ? 58 : 1][i % 3] as number;
    const icmp = proto === 1 || proto === 58;
    out.push(
      sampleNetflowRecord({
        family: v6 ? 6 : 4,
        srcAddr: v6
          ? addrBytes(`fd00:1::${(i + 1).toString(16)}`)
          : addrBytes(`10.20.${i >> 8}.${i & 0xff}`),
        dstAddr: v6 ? addrBytes("fd00:2::1") : addrBytes("10.30.0.1"),
        proto,
        srcPort: icmp ? 0 : 20000 + i,
        dstPort: icmp ? 0 : 443,
        icmpType: icmp ? (v6 ? 128 : 8) : 0,
        icmpCode: 0,
        tcpFlags: proto === 6 ? 0x12 : 0,
        ifindex: 3 + (i % 5),
        direction: i % 4 < 2 ? "ingress" : "egress",
        bytes: BigInt(1_000_003 * (i + 1)),
        packets: BigInt(997 * (i + 1)),
        firstSeenMs: t0 + i,
        lastSeenMs: t0 + i + 5_000 + (i % 1000),
        dscp: i % 64,
      }),
    );
  }
  return out;
}

describe.skipIf(!hasNfdump())("netflow ipfix", () => {
  test("netflow ipfix - nfdump reads back every exported flow exactly", async () => {
    const nf = await collector();
    const records = mixedRecords(600);
    const exporter = await IpfixExporter.open({
      host: "127.0.0.1",
      port: nf.port,
      observationDomainId: 7,
    });
    const queue = new NetflowExportQueue({ exporters: [exporter], batchSize: 100 });
    cleanups.push(() => queue.close());
    // Pushed as the evictor does: many small batches, never waiting.
    for (let i = 0; i < records.length; i += 37) queue.push(records.slice(i, i + 37));
    await queue.flush();
    expect(queue.stats()[0]).toEqual({ exporter: "ipfix", queued: 0, exported: 600, dropped: 0 });
    const { flows, totals } = await nf.stop();
    expect(totals).toEqual({
      flows: 600,
      packets: Number(records.reduce((n, r) => n + r.packets, 0n)),
      bytes: Number(records.reduce((n, r) => n + r.bytes, 0n)),
      sequenceErrors: 0,
      badPackets: 0,
    });
    expect(flows.length).toBe(600);
    const byKey = new Map(flows.map((f) => [keyOfFlow(f), f]));
    expect(byKey.size).toBe(600);
    let bytes = 0n;
    let packets = 0n;
    for (const r of records) {
      const f = byKey.get(keyOfRecord(r));
      if (f === undefined) throw new Error(`nfdump has no flow ${keyOfRecord(r)}`);
      expect(BigInt(f.in_bytes)).toBe(r.bytes);
      expect(BigInt(f.in_packets)).toBe(r.packets);
      expect(nfdumpTimeMs(f.first)).toBe(r.firstSeenMs);
      expect(nfdumpTimeMs(f.last)).toBe(r.lastSeenMs);
      expect(f.direction).toBe(r.direction === "ingress" ? 0 : 1);
      expect(f.src_tos).toBe(r.dscp << 2);
      bytes += r.bytes;
      packets += r.packets;
    }
    const sum = (k: "in_bytes" | "in_packets") => flows.reduce((n, f) => n + BigInt(f[k]), 0n);
    expect(sum("in_bytes")).toBe(bytes);
    expect(sum("in_packets")).toBe(packets);
  });

  test("netflow ipfix - an exporter that cannot keep up: every record reaches nfdump or is counted dropped", async () => {
    const nf = await collector();
    const exporter = await IpfixExporter.open({ host: "127.0.0.1", port: nf.port });
    const drops: NetflowDrop[] = [];
    const queue = new NetflowExportQueue({
      exporters: [exporter],
      capacity: 300,
      batchSize: 100,
      onDrop: (d) => drops.push(d),
    });
    cleanups.push(() => queue.close());
    const records = mixedRecords(2000);
    // The evictor never waits: 20 pushes of 100 records in one go, faster than any export.
    for (let i = 0; i < records.length; i += 100) queue.push(records.slice(i, i + 100));
    await queue.flush();
    const [lane] = queue.stats();
    const dropped = drops.reduce((n, d) => n + d.count, 0);
    expect(drops.every((d) => d.kind === "overflow" && d.exporter === "ipfix")).toBe(true);
    // One batch of 100 went into the first export call, 300 waited in the ring.
    expect(dropped).toBe(1600);
    expect(lane?.dropped).toBe(dropped);
    expect((lane?.exported ?? 0) + dropped).toBe(2000);
    const { flows, totals } = await nf.stop();
    expect(flows.length).toBe(lane?.exported ?? -1);
    expect(totals.sequenceErrors).toBe(0);
  });

  test("netflow ipfix - a collector started late decodes once templates are re-sent", async () => {
    const port = await freePort();
    // Templates go out at open, to nobody: the collector is not running yet.
    const exporter = await IpfixExporter.open({ host: "127.0.0.1", port, templateIntervalMs: 300 });
    cleanups.push(() => exporter.close());
    const opened = Date.now();
    const nf = await collector(port);
    // Within the interval data goes without templates: nfcapd cannot decode it.
    if (Date.now() - opened < 300) await exporter.export([sampleNetflowRecord({ srcPort: 1 })]);
    await waitFor(() => Date.now() - opened >= 300, { what: "template interval" });
    await exporter.export([sampleNetflowRecord({ srcPort: 2, bytes: 4242n, packets: 3n })]);
    const { flows, totals } = await nf.stop();
    expect(flows.map((f) => [f.src_port, f.in_bytes, f.in_packets])).toEqual([[2, 4242, 3]]);
    expect(totals.flows).toBe(1);
  });
});

const canAttach = process.getuid?.() === 0 && existsSync(DEFAULT_BPF_OBJECT);

async function inNs(ns: string, cmd: string): Promise<string> {
  return runOk(["ip", "netns", "exec", ns, "bash", "-c", cmd], { timeoutMs: 60_000 });
}

/** "N packets transmitted, M received" of ping's summary. */
function pingSummary(out: string): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) throw new Error(`no ping summary in ${out}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}

describe.skipIf(!hasNfdump() || !canAttach)("netflow ipfix (root, collector, namespaces)", () => {
  test("netflow ipfix - real ICMP, UDP and TCP exported by the collector: nfdump equals ping, iperf3, the device and NATS", async () => {
    const nats = await startLocalNats({});
    cleanups.push(() => nats.stop());
    const nc = await connect({ servers: nats.url });
    cleanups.push(() => nc.close());
    const ns = await createNetnsPair();
    cleanups.push(() => ns.destroy());
    const [a, b, ipA, ipB] = [`xa${ns.id}`, `xb${ns.id}`, "10.234.0.1", "10.234.0.2"];
    // No IPv6 and no ARP on the link: every frame on it is a test packet.
    await addQuietVeth(ns, a, b, [ipA, ipB]);
    const server = Bun.spawn(["ip", "netns", "exec", ns.nsB, "iperf3", "-s"], {
      stdout: "ignore",
      stderr: "ignore",
    });
    cleanups.push(async () => {
      server.kill("SIGKILL");
      await server.exited;
    });
    const nf = await collector();
    const node = `psct-ipfix-${ns.id}`;
    const natsRecords: netflowV1.NetflowRecord[] = [];
    const sub = nc.subscribe(subjects.netflows(node), {
      callback: (err, msg) => {
        if (!err) natsRecords.push(...fromBinary(netflowV1.NetflowRecordsSchema, msg.data).entries);
      },
    });
    await nc.flush();
    const c = await startCollector(
      parseConfig(
        [
          `--nats-url=${nats.url}`,
          `--node-name=${node}`,
          `--interfaces=${ns.nsA}/${a}`,
          "--ops-addr=127.0.0.1:0",
          "--log-level=warn",
          "--drops=off",
          "--flow-export=on",
          `--ipfix-collector=127.0.0.1:${nf.port}`,
        ],
        {},
      ),
      { log: createLogger("collector", "warn") },
    );
    let stopped = false;
    cleanups.push(async () => {
      if (!stopped) await c.stop();
    });
    for (const [n, d] of [
      [ns.nsA, a],
      [ns.nsB, b],
    ] as const)
      await runOk(["ip", "-n", n, "link", "set", d, "up"]);
    await waitFor(async () => (await inNs(ns.nsB, "ss -ltn")).includes(":5201"), {
      what: "iperf3 server",
    });
    const ping = pingSummary(await inNs(ns.nsA, `ping -c 50 -i 0.005 -q ${ipB}`));
    const udp = JSON.parse(await inNs(ns.nsA, `iperf3 -J -c ${ipB} -u -b 10M -l 500 -t 1`)) as {
      end: { sum: { packets: number } };
    };
    await inNs(ns.nsA, `iperf3 -J -c ${ipB} -n 4M`);
    await c.stop();
    stopped = true;
    expect(await tcFilterProgIds(ns.nsA, a, "egress")).toEqual([]);
    const dev = await linkStats(ns.nsA, a);
    await nc.flush();
    sub.unsubscribe();
    const { flows, totals } = await nf.stop();
    expect(totals.sequenceErrors).toBe(0);

    // Every packet through the device is in one exported flow, both directions.
    const dir = (d: number) =>
      flows.filter((f) => f.direction === d && f.input_snmp + f.output_snmp > 0);
    const sum = (fs: NfdumpFlow[], k: "in_packets" | "in_bytes") =>
      fs.reduce((n, f) => n + f[k], 0);
    expect(sum(dir(1), "in_packets")).toBe(dev.tx.packets);
    expect(sum(dir(1), "in_bytes")).toBe(dev.tx.bytes - 14 * dev.tx.packets);
    expect(sum(dir(0), "in_packets")).toBe(dev.rx.packets);
    expect(sum(dir(0), "in_bytes")).toBe(dev.rx.bytes - 14 * dev.rx.packets);

    // ICMP echo as ping counted it; UDP as iperf3 counted it (plus its 4-byte opening datagram).
    const echo = (t: number) => flows.filter((f) => f.proto === 1 && f.icmp_type === t);
    expect(sum(echo(8), "in_packets")).toBe(ping.sent);
    expect(sum(echo(8), "in_bytes")).toBe(ping.sent * 84);
    expect(sum(echo(0), "in_packets")).toBe(ping.received);
    const udpOut = flows.filter(
      (f) => f.proto === 17 && f.dst_port === 5201 && f.src4_addr === ipA,
    );
    expect(sum(udpOut, "in_packets")).toBe(udp.end.sum.packets + 1);
    expect(sum(udpOut, "in_bytes")).toBe(udp.end.sum.packets * 528 + 32);

    // The IPFIX flows are the NATS records, one for one.
    const key = (src: string, dst: string, p: number, sp: number, dp: number, d: number) =>
      `${src} ${dst} ${p} ${sp} ${dp} ${d}`;
    const fromNats = new Map<string, bigint>();
    for (const r of natsRecords) {
      const ip = (x: netflowV1.Ip | undefined) =>
        x?.ipFamily.case === "ipv4"
          ? [24, 16, 8, 0].map((s) => ((x.ipFamily.value as number) >>> s) & 255).join(".")
          : "?";
      const k = key(
        ip(r.network?.srcAddr),
        ip(r.network?.dstAddr),
        r.transport?.protocol ?? 0,
        r.transport?.srcPort ?? 0,
        r.transport?.dstPort ?? 0,
        r.direction,
      );
      fromNats.set(k, (fromNats.get(k) ?? 0n) + r.packets);
    }
    const fromIpfix = new Map<string, bigint>();
    for (const f of flows) {
      const icmp = f.proto === 1;
      const k = key(
        f.src4_addr ?? "",
        f.dst4_addr ?? "",
        f.proto,
        icmp ? 0 : (f.src_port ?? 0),
        icmp ? 0 : (f.dst_port ?? 0),
        f.direction,
      );
      fromIpfix.set(k, (fromIpfix.get(k) ?? 0n) + BigInt(f.in_packets));
    }
    expect(flows.length).toBe(natsRecords.length);
    expect(fromIpfix).toEqual(fromNats);
  }, 90_000);
});
