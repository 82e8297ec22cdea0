/**
 * Flow records end to end: a real collector (in this process) on veths between test
 * namespaces, a real nats-server, real traffic (ping, iperf3, UDP datagrams). Every
 * count is compared with what the sender reports or with the devices' own counters:
 * ICMP, UDP and TCP over IPv4 and IPv6; active and inactive timeouts; a tiny flow
 * table whose overflow goes through the fallback accounter; dedupe across a veth pair
 * and a bridge; nothing left behind.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { fromBinary } from "@bufbuild/protobuf";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { kernelDropReasons } from "@periscope/bpf";
import { subjects } from "@periscope/bus";
import { addNetnsForTest, deleteNetns } from "@periscope/devstack/testing.ts";
import { netflowV1 } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import {
  addQuietVeth,
  createNetnsPair,
  freePort,
  type LocalNats,
  linkStats,
  loadedProgIds,
  type NetnsPair,
  runOk,
  startLocalNats,
  tcFilterProgIds,
  waitFor,
  waitForValue,
} from "@periscope/testing";
import { type Collector, startCollector } from "../services/collector/src/collector.ts";
import { DEFAULT_BPF_OBJECT, parseConfig } from "../services/collector/src/config.ts";

const canRun = process.getuid?.() === 0 && existsSync(DEFAULT_BPF_OBJECT);
const ER = netflowV1.EndReason;
type Rec = netflowV1.NetflowRecord;

/** Every record published on periscope.netflows.<node> while subscribed. */
class RecordLog {
  readonly records: Rec[] = [];
  readonly #sub: Subscription;
  constructor(nc: NatsConnection, node: string) {
    this.#sub = nc.subscribe(subjects.netflows(node), {
      callback: (err, msg) => {
        if (err) throw err;
        this.records.push(...fromBinary(netflowV1.NetflowRecordsSchema, msg.data).entries);
      },
    });
  }
  close(): void {
    this.#sub.unsubscribe();
  }
}

const sum = (rs: Rec[], f: (r: Rec) => bigint) => rs.reduce((n, r) => n + f(r), 0n);
const packets = (rs: Rec[]) => sum(rs, (r) => r.packets);
const bytes = (rs: Rec[]) => sum(rs, (r) => r.bytes);
const proto = (r: Rec) => r.transport?.protocol;

async function sh(ns: string, cmd: string): Promise<string> {
  return runOk(["ip", "netns", "exec", ns, "bash", "-c", cmd]);
}

async function up(n: string, dev: string): Promise<void> {
  await runOk(["ip", "-n", n, "link", "set", dev, "up"]);
}

/** "N packets transmitted, M received" of ping's summary. */
function pingCounts(out: string): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) throw new Error(`no ping summary in ${out}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}

interface IperfSum {
  bytes: number;
  packets?: number;
  retransmits?: number;
}

/** iperf3's summary: UDP `sum` (datagrams sent); TCP bytes sent and received. */
interface IperfEnd {
  sum?: IperfSum;
  sum_sent?: IperfSum;
  sum_received?: IperfSum;
}

async function iperf(ns: string, args: string[]): Promise<IperfEnd> {
  const out = JSON.parse(await runOk(["ip", "netns", "exec", ns, "iperf3", "-J", ...args])) as {
    end: IperfEnd;
  };
  return out.end;
}

describe.skipIf(!canRun)("netflow (root, real kernel, nats-server, namespaces)", () => {
  let nats: LocalNats;
  let nc: NatsConnection;
  let ns: NetnsPair;
  let nsC = "";
  let server: ReturnType<typeof Bun.spawn> | undefined;
  const progIds = new Set<number>();

  beforeAll(async () => {
    nats = await startLocalNats({});
    nc = await connect({ servers: nats.url });
    ns = await createNetnsPair();
    await addQuietVeth(ns, `fa${ns.id}`, `fb${ns.id}`, ["10.233.0.1", "10.233.0.2"]);
    await addQuietVeth(ns, `ga${ns.id}`, `gb${ns.id}`);
    await runOk([
      "ip",
      "-n",
      ns.nsA,
      "addr",
      "add",
      "fd00:233::1/64",
      "dev",
      `ga${ns.id}`,
      "nodad",
    ]);
    await runOk([
      "ip",
      "-n",
      ns.nsB,
      "addr",
      "add",
      "fd00:233::2/64",
      "dev",
      `gb${ns.id}`,
      "nodad",
    ]);
    server = Bun.spawn(["ip", "netns", "exec", ns.nsB, "iperf3", "-s"], {
      stdout: "ignore",
      stderr: "ignore",
    });
  }, 30_000);

  afterAll(async () => {
    server?.kill(9);
    await server?.exited;
    if (nsC) await deleteNetns(nsC);
    await ns?.destroy();
    await nc?.close();
    await nats?.stop();
    // nothing of ours stays loaded once the namespaces are gone
    const loaded = await loadedProgIds();
    expect([...progIds].filter((id) => loaded.has(id))).toEqual([]);
  }, 30_000);

  async function collector(node: string, ifaces: string[], flags: string[]): Promise<Collector> {
    const config = parseConfig(
      [
        `--nats-url=${nats.url}`,
        `--node-name=${node}`,
        `--interfaces=${ifaces.join(",")}`,
        "--ops-addr=127.0.0.1:0",
        "--log-level=warn",
        "--drops=off",
        "--flow-export=on",
        ...flags,
      ],
      {},
    );
    const c = await startCollector(config, { log: createLogger("collector", "warn") });
    expect(c.attached().sort()).toEqual([...ifaces].sort());
    for (const name of ifaces) {
      const [n, dev] = name.split("/") as [string, string];
      for (const hook of ["ingress", "egress"] as const) {
        for (const id of await tcFilterProgIds(n, dev, hook)) progIds.add(id);
      }
    }
    return c;
  }

  let up4and6 = false;
  /** Brings the IPv4 and IPv6 test links up (once; the first test does it with its collector attached). */
  async function linksUp(): Promise<void> {
    if (up4and6) return;
    for (const [n, d] of [
      [ns.nsA, `fa${ns.id}`],
      [ns.nsB, `fb${ns.id}`],
      [ns.nsA, `ga${ns.id}`],
      [ns.nsB, `gb${ns.id}`],
    ] as const) {
      await up(n, d);
    }
    up4and6 = true;
  }

  /** Stops `c` and checks its filters are gone from every device. */
  async function stopAndCheck(c: Collector, ifaces: string[]): Promise<void> {
    await c.stop();
    for (const name of ifaces) {
      const [n, dev] = name.split("/") as [string, string];
      expect(await tcFilterProgIds(n, dev, "ingress")).toEqual([]);
      expect(await tcFilterProgIds(n, dev, "egress")).toEqual([]);
    }
  }

  test("netflow - ICMP, UDP, TCP over IPv4 and IPv6 counted exactly; device counters match", async () => {
    const fa = `fa${ns.id}`;
    const ga = `ga${ns.id}`;
    const ifaces = [`${ns.nsA}/${fa}`, `${ns.nsA}/${ga}`];
    const node = `psct-nf-exact-${ns.id}`;
    const log = new RecordLog(nc, node);
    const c = await collector(node, ifaces, ["--flow-dedupe=off"]);
    try {
      await linksUp();
      await waitFor(async () => (await sh(ns.nsB, "ss -ltn")).includes(":5201"), {
        what: "iperf3 server listening",
      });
      const ping4 = pingCounts(await sh(ns.nsA, "ping -c 40 -i 0.005 -q 10.233.0.2"));
      const ping6 = pingCounts(await sh(ns.nsA, "ping -6 -c 30 -i 0.005 -q fd00:233::2"));
      const udp4 = await iperf(ns.nsA, [
        "-c",
        "10.233.0.2",
        "-u",
        "-b",
        "20M",
        "-l",
        "1000",
        "-t",
        "1",
      ]);
      const udp6 = await iperf(ns.nsA, [
        "-c",
        "fd00:233::2",
        "-u",
        "-b",
        "20M",
        "-l",
        "1000",
        "-t",
        "1",
      ]);
      const tcp4 = await iperf(ns.nsA, ["-c", "10.233.0.2", "-t", "1"]);
      const tcp6 = await iperf(ns.nsA, ["-c", "fd00:233::2", "-t", "1"]);
      await stopAndCheck(c, ifaces);
      // the device counters, read once nothing is attached and no traffic runs
      const dev4 = await linkStats(ns.nsA, fa);
      const on = (ifname: string, dir: 0 | 1) =>
        log.records.filter((r) => r.interface === ifname && r.direction === dir);
      const out4 = on(fa, 1);
      const in4 = on(fa, 0);
      const out6 = on(ga, 1);

      // ICMP echo: one record set per type; IPv4 84-byte, IPv6 104-byte packets
      const echo = (rs: Rec[], type: number) =>
        rs.filter((r) => r.icmpType === type && proto(r) !== 6 && proto(r) !== 17);
      expect(packets(echo(out4, 8))).toBe(BigInt(ping4.sent));
      expect(bytes(echo(out4, 8))).toBe(BigInt(ping4.sent * 84));
      expect(packets(echo(in4, 0))).toBe(BigInt(ping4.received));
      expect(packets(echo(out6, 128))).toBe(BigInt(ping6.sent));
      expect(bytes(echo(out6, 128))).toBe(BigInt(ping6.sent * 104));

      // UDP: iperf3's datagrams (1000 bytes payload + UDP + IP headers each) plus the one
      // 4-byte datagram its client sends first to open the test
      const udpOut = (rs: Rec[]) =>
        rs.filter((r) => proto(r) === 17 && r.transport?.dstPort === 5201);
      for (const [rs, sent, ip] of [
        [out4, udp4, 20],
        [out6, udp6, 40],
      ] as const) {
        const n = BigInt(sent.sum?.packets ?? -1);
        expect(packets(udpOut(rs))).toBe(n + 1n);
        expect(bytes(udpOut(rs))).toBe(n * BigInt(1000 + 8 + ip) + BigInt(4 + 8 + ip));
      }

      // TCP: payload between what iperf3's server received and what its client wrote
      // (bytes in flight when the test ends), plus at most one IP+TCP header per packet,
      // the retransmitted segments and the control connection's few messages
      for (const [rs, end, hdr] of [
        [out4, tcp4, 20 + 60],
        [out6, tcp6, 40 + 60],
      ] as const) {
        const data = rs.filter((r) => proto(r) === 6 && r.transport?.dstPort === 5201);
        const b = bytes(data);
        const retransmitted = BigInt(end.sum_sent?.retransmits ?? 0) * 1500n;
        expect(b).toBeGreaterThanOrEqual(BigInt(end.sum_received?.bytes ?? -1));
        expect(b).toBeLessThanOrEqual(
          BigInt(end.sum_sent?.bytes ?? 0) + packets(data) * BigInt(hdr) + retransmitted + 65536n,
        );
        expect(data.some((r) => (r.flags & 0x02) !== 0)).toBe(true); // the SYNs are in
      }
      // handshake RTT measured on the SYN-ACK's record
      expect(on(fa, 0).some((r) => proto(r) === 6 && r.timeFlowRtt !== undefined)).toBe(true);

      // every frame of the IPv4 link is in a record: device counters = records (+14 B Ethernet)
      expect(packets(out4)).toBe(BigInt(dev4.tx.packets));
      expect(bytes(out4) + 14n * packets(out4)).toBe(BigInt(dev4.tx.bytes));
      expect(packets(in4)).toBe(BigInt(dev4.rx.packets));
      expect(bytes(in4) + 14n * packets(in4)).toBe(BigInt(dev4.rx.bytes));

      for (const r of log.records) {
        expect(r.node).toBe(node);
        expect(r.agentIp?.ipFamily.case).toBeDefined();
        expect(r.endReason).toBeOneOf([ER.IDLE, ER.ACTIVE, ER.SHUTDOWN]);
      }
      const st = c.netflowStats();
      expect(st?.fallbackPackets).toBe(0);
      expect(st?.exportDropped).toBe(0);
      expect(st?.implausible).toBe(0);
      expect(st?.records).toBe(log.records.length);
    } finally {
      await c.stop();
      log.close();
    }
  }, 40_000);

  test("netflow - every packet after /readyz is counted: 300 pings started at readiness", async () => {
    await linksUp();
    const fa = `fa${ns.id}`;
    const ifaces = [`${ns.nsA}/${fa}`];
    const node = `psct-nf-ready-${ns.id}`;
    const log = new RecordLog(nc, node);
    const port = await freePort();
    const config = parseConfig(
      [
        `--nats-url=${nats.url}`,
        `--node-name=${node}`,
        `--interfaces=${ifaces.join(",")}`,
        `--ops-addr=127.0.0.1:${port}`,
        "--log-level=warn",
        "--drops=off",
        "--flow-export=on",
        "--flow-dedupe=off",
      ],
      {},
    );
    const starting = startCollector(config, { log: createLogger("collector", "warn") });
    let c: Collector | undefined;
    try {
      // the pings start as soon as /readyz answers, while startCollector may still run
      await waitFor(`http://127.0.0.1:${port}/readyz`, {
        intervalMs: 1,
        timeoutMs: 20_000,
        what: "collector /readyz",
      });
      const ping = pingCounts(await sh(ns.nsA, "ping -c 300 -i 0.002 -q 10.233.0.2"));
      c = await starting;
      for (const hook of ["ingress", "egress"] as const) {
        for (const id of await tcFilterProgIds(ns.nsA, fa, hook)) progIds.add(id);
      }
      await stopAndCheck(c, ifaces);
      const on = (dir: 0 | 1, type: number) =>
        log.records.filter(
          (r) => r.interface === fa && r.direction === dir && r.icmpType === type && proto(r) === 1,
        );
      await waitFor(() => packets(on(1, 8)) >= BigInt(ping.sent), {
        timeoutMs: 3000,
        what: "echo request records",
      }).catch(() => undefined);
      expect(ping.sent).toBe(300);
      expect(packets(on(1, 8))).toBe(BigInt(ping.sent));
      expect(packets(on(0, 0))).toBe(BigInt(ping.received));
      expect(c.netflowStats()?.implausible).toBe(0);
    } finally {
      log.close();
      if (c === undefined) c = await starting.catch(() => undefined);
      await c?.stop();
    }
  }, 40_000);

  test("netflow - active and inactive timeouts fire while the flow runs and after it ends", async () => {
    const fa = `fa${ns.id}`;
    const ifaces = [`${ns.nsA}/${fa}`];
    const node = `psct-nf-timeout-${ns.id}`;
    const log = new RecordLog(nc, node);
    const c = await collector(node, ifaces, [
      "--flow-active-timeout=1s",
      "--flow-idle-timeout=300ms",
    ]);
    try {
      await linksUp();
      const sent = pingCounts(await sh(ns.nsA, "ping -c 25 -i 0.1 -q 10.233.0.2")).sent;
      const requests = () => log.records.filter((r) => r.icmpType === 8 && proto(r) === 1);
      // the idle record comes after the last request, before any stop
      await waitFor(() => requests().some((r) => r.endReason === ER.IDLE), {
        timeoutMs: 5000,
        what: "an idle record of the echo requests",
      });
      const rs = requests();
      expect(rs.filter((r) => r.endReason === ER.ACTIVE).length).toBeGreaterThanOrEqual(2);
      expect(packets(rs)).toBe(BigInt(sent));
      // a record spans at most the active timeout plus one eviction tick (75 ms here)
      for (const r of rs) {
        const span =
          Number(r.timeFlowEnd?.seconds ?? 0n) * 1000 +
          (r.timeFlowEnd?.nanos ?? 0) / 1e6 -
          (Number(r.timeFlowStart?.seconds ?? 0n) * 1000 + (r.timeFlowStart?.nanos ?? 0) / 1e6);
        expect(span).toBeLessThanOrEqual(1100);
      }
    } finally {
      await stopAndCheck(c, ifaces);
      log.close();
    }
  }, 30_000);

  test("netflow - a two-entry table overflows into the fallback accounter; totals stay exact", async () => {
    const fa = `fa${ns.id}`;
    const ifaces = [`${ns.nsA}/${fa}`];
    const node = `psct-nf-tiny-${ns.id}`;
    const log = new RecordLog(nc, node);
    const c = await collector(node, ifaces, ["--flow-table-entries=2"]);
    await linksUp();
    const before = await linkStats(ns.nsA, fa);
    try {
      // 300 datagrams from 300 sockets (300 flows), 3-byte payload each
      await sh(
        ns.nsA,
        "for i in $(seq 1 300); do echo ab > /dev/udp/10.233.0.2/$((9000 + i % 40)); done",
      );
      const ping = pingCounts(await sh(ns.nsA, "ping -c 20 -i 0.005 -q 10.233.0.2"));
      // the fallback shows on the collector's Prometheus endpoint
      const metric = async (name: string) => {
        const text = await (await fetch(`http://127.0.0.1:${c.opsPort}/metrics`)).text();
        const m = new RegExp(`^periscope_collector_${name} (\\d+)$`, "m").exec(text);
        return m ? Number(m[1]) : undefined;
      };
      await waitFor(async () => ((await metric("netflow_fallback_packets_total")) ?? 0) > 0, {
        what: "fallback packets in the metrics",
      });
      for (const name of [
        "netflow_fallback_lost_total",
        "netflow_dedupe_dropped_total",
        "netflow_packets_total",
        "netflow_bytes_total",
        "netflow_cached_flows",
      ]) {
        expect(await metric(name)).toBeNumber();
      }
      await stopAndCheck(c, ifaces);
      const after = await linkStats(ns.nsA, fa);
      const out = log.records.filter((r) => r.interface === fa && r.direction === 1);
      const udp = out.filter((r) => proto(r) === 17);
      expect(packets(udp)).toBe(300n);
      expect(bytes(udp)).toBe(300n * 31n);
      expect(packets(out.filter((r) => r.icmpType === 8 && proto(r) === 1))).toBe(
        BigInt(ping.sent),
      );
      const fallback = log.records.filter((r) => r.endReason === ER.FALLBACK);
      expect(fallback.length).toBeGreaterThan(0);
      const st = c.netflowStats();
      expect(st?.fallbackPackets).toBe(Number(packets(fallback)));
      expect(st?.fallbackLost).toBe(0);
      expect(st?.implausible).toBe(0);
      // both directions: every frame the device counted is in a record
      expect(packets(out)).toBe(BigInt(after.tx.packets - before.tx.packets));
      const inn = log.records.filter((r) => r.interface === fa && r.direction === 0);
      expect(packets(inn)).toBe(BigInt(after.rx.packets - before.rx.packets));
    } finally {
      await c.stop();
      log.close();
    }
  }, 30_000);

  test("netflow - kernel drops land in their flow's record with the last drop reason", async () => {
    const fa = `fa${ns.id}`;
    const fb = `fb${ns.id}`;
    const ifaces = [`${ns.nsA}/${fa}`, `${ns.nsB}/${fb}`];
    const node = `psct-nf-drops-${ns.id}`;
    const log = new RecordLog(nc, node);
    const c = await collector(node, ifaces, ["--flow-dedupe=off", "--drops=watched"]);
    try {
      await linksUp();
      await sh(
        ns.nsB,
        "nft 'add table inet psnf; add chain inet psnf in { type filter hook input priority 0; }; add rule inet psnf in udp dport 9977 drop'",
      );
      // 25 datagrams of 2 bytes from one socket: one flow, every packet dropped in nsB's input
      await sh(
        ns.nsA,
        "exec 3>/dev/udp/10.233.0.2/9977; for i in $(seq 1 25); do echo x >&3; done",
      );
      await stopAndCheck(c, ifaces);
      const at = log.records.filter(
        (r) => r.interface === fb && r.direction === 0 && r.transport?.dstPort === 9977,
      );
      expect(packets(at)).toBe(25n);
      expect(sum(at, (r) => r.pktDropPackets)).toBe(25n);
      expect(sum(at, (r) => r.pktDropBytes)).toBe(25n * 30n);
      const reason = [...kernelDropReasons()].find(([, name]) => name === "NETFILTER_DROP")?.[0];
      expect(at.some((r) => r.pktDropLatestDropCause === reason)).toBe(true);
      // the sender's side saw them leave, without drops
      const sent = log.records.filter(
        (r) => r.interface === fa && r.direction === 1 && r.transport?.dstPort === 9977,
      );
      expect(packets(sent)).toBe(25n);
      expect(sum(sent, (r) => r.pktDropPackets)).toBe(0n);
    } finally {
      await c.stop();
      log.close();
    }
  }, 30_000);

  test("netflow - dedupe across a veth pair and a bridge: drop keeps one interface, mark flags the rest", async () => {
    // nsA (h0, 10.234.0.1) -- nsB bridge (p0, p1) -- nsC (h1, 10.234.0.2)
    nsC = `${ns.nsA.slice(0, -2)}-c`;
    await addNetnsForTest(nsC);
    const h0 = `ha${ns.id}`;
    const h1 = `hc${ns.id}`;
    const p0 = `pa${ns.id}`;
    const p1 = `pc${ns.id}`;
    const br = `br${ns.id}`;
    await runOk([
      "ip",
      "-n",
      ns.nsA,
      "link",
      "add",
      h0,
      "type",
      "veth",
      "peer",
      "name",
      p0,
      "netns",
      ns.nsB,
    ]);
    await runOk([
      "ip",
      "-n",
      nsC,
      "link",
      "add",
      h1,
      "type",
      "veth",
      "peer",
      "name",
      p1,
      "netns",
      ns.nsB,
    ]);
    await runOk(["ip", "-n", ns.nsB, "link", "add", br, "type", "bridge"]);
    for (const p of [p0, p1]) await runOk(["ip", "-n", ns.nsB, "link", "set", p, "master", br]);
    await runOk(["ip", "-n", ns.nsA, "addr", "add", "10.234.0.1/24", "dev", h0]);
    await runOk(["ip", "-n", nsC, "addr", "add", "10.234.0.2/24", "dev", h1]);
    for (const [n, d] of [
      [ns.nsA, h0],
      [nsC, h1],
      [ns.nsB, p0],
      [ns.nsB, p1],
      [ns.nsB, br],
    ] as const) {
      await up(n, d);
    }
    const ifaces = [`${ns.nsA}/${h0}`, `${ns.nsB}/${p0}`, `${ns.nsB}/${p1}`, `${nsC}/${h1}`];
    const requestsOf = (rs: Rec[]) =>
      rs.filter((r) => r.icmpType === 8 && proto(r) === 1 && r.transport?.protocol === 1);
    for (const mode of ["drop", "mark"] as const) {
      const node = `psct-nf-dedupe-${mode}-${ns.id}`;
      const log = new RecordLog(nc, node);
      const c = await collector(node, ifaces, [`--flow-dedupe=${mode}`]);
      try {
        const { sent } = pingCounts(await sh(ns.nsA, "ping -c 10 -i 0.01 -q 10.234.0.2"));
        await stopAndCheck(c, ifaces);
        const reqs = requestsOf(log.records);
        const points = (rs: Rec[]) => new Set(rs.map((r) => `${r.interface}/${r.direction}`));
        const owned = reqs.filter((r) => !r.duplicate);
        // one observation point reports the requests, with all of them
        expect(points(owned).size).toBe(1);
        expect(packets(owned)).toBe(BigInt(sent));
        if (mode === "drop") {
          expect(reqs.every((r) => !r.duplicate)).toBe(true);
          expect(c.netflowStats()?.dedupeDropped).toBeGreaterThanOrEqual(3);
        } else {
          // h0 egress, p0 ingress, p1 egress, h1 ingress: each saw every request
          const dups = reqs.filter((r) => r.duplicate);
          expect(points(dups).size).toBe(3);
          for (const p of points(reqs)) {
            const at = reqs.filter((r) => `${r.interface}/${r.direction}` === p);
            expect(packets(at)).toBe(BigInt(sent));
          }
        }
      } finally {
        await c.stop();
        log.close();
      }
    }
    const left = await waitForValue(
      async () => {
        const loaded = await loadedProgIds();
        const still = [...progIds].filter((id) => loaded.has(id));
        return still.length === 0 ? still : undefined;
      },
      { what: "flow programs freed" },
    );
    expect(left).toEqual([]);
  }, 40_000);
});
