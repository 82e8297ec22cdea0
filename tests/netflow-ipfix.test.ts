/**
 * IPFIX export read back by Debian's nfcapd/nfdump: the exporter sends to a real nfcapd on
 * loopback, nfdump reads the stored file, and every flow's addresses, ports, protocol,
 * bytes, packets, times, interfaces and direction match what was exported.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { IpfixExporter, NetflowExportQueue, type NetflowRecord } from "@periscope/netflow";
import {
  hasNfdump,
  type Nfcapd,
  type NfdumpFlow,
  nfdumpTimeMs,
  startNfcapd,
} from "@periscope/netflow/nfcapd.ts";
import { addrBytes, sampleNetflowRecord } from "@periscope/netflow/test-helpers.ts";
import { freePort, waitFor } from "@periscope/testing";

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
