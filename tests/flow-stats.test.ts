/**
 * Bytes per connection end to end: a real collector with flow export on a veth between
 * test namespaces, a real nats-server, a real observer; ping and iperf3 traffic. What the
 * observer's FlowStatsService answers equals, key for key, the sums of the records the
 * collector published (read off NATS by the test), the ICMP sums equal what ping sent,
 * and the page's join (ui/src/bytes.ts) finds both directions of the TCP edge.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import { flowstatsV1, netflowV1 } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import {
  addVeth,
  createNetnsPair,
  type LocalNats,
  type NetnsPair,
  runOk,
  startLocalNats,
  tcFilterProgIds,
  waitFor,
  waitForValue,
} from "@periscope/testing";
import { startCollector } from "../services/collector/src/collector.ts";
import { DEFAULT_BPF_OBJECT, parseConfig } from "../services/collector/src/config.ts";
import { parseConfig as parseObserverConfig } from "../services/observer/src/config.ts";
import { type RunningObserver, startObserver } from "../services/observer/src/server.ts";
import { ByteTable } from "../ui/src/bytes.ts";

const canRun = process.getuid?.() === 0 && existsSync(DEFAULT_BPF_OBJECT);
const A = "10.234.0.1";
const B = "10.234.0.2";
const { PortSide } = flowstatsV1;

interface Sum {
  bytes: bigint;
  packets: bigint;
  records: bigint;
}

/** Expected sums per FlowStat key, from the published records (duplicates left out). */
function expectedSums(records: netflowV1.NetflowRecord[]): Map<string, Sum> {
  const out = new Map<string, Sum>();
  const ip = (x: netflowV1.Ip | undefined) => {
    const v = x?.ipFamily.case === "ipv4" ? x.ipFamily.value : 0;
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".");
  };
  for (const r of records) {
    if (r.duplicate || r.ethProtocol !== 0x0800) continue;
    const t = r.transport;
    for (const [side, port] of [
      [PortSide.DESTINATION, t?.dstPort ?? 0],
      [PortSide.SOURCE, t?.srcPort ?? 0],
    ] as const) {
      const k = `${ip(r.network?.srcAddr)}|${ip(r.network?.dstAddr)}|${t?.protocol ?? 0}|${side}|${port}`;
      const s = out.get(k) ?? { bytes: 0n, packets: 0n, records: 0n };
      s.bytes += r.bytes;
      s.packets += r.packets;
      s.records++;
      out.set(k, s);
    }
  }
  return out;
}

describe.skipIf(!canRun)("flow stats (root, real collector, nats-server, namespaces)", () => {
  let nats: LocalNats;
  let nc: NatsConnection;
  let ns: NetnsPair;
  let observer: RunningObserver;
  let server: ReturnType<typeof Bun.spawn> | undefined;

  beforeAll(async () => {
    nats = await startLocalNats({});
    nc = await connect({ servers: nats.url });
    ns = await createNetnsPair();
    await addVeth(ns, `sa${ns.id}`, `sb${ns.id}`, A, B);
    server = Bun.spawn(["ip", "netns", "exec", ns.nsB, "iperf3", "-s"], {
      stdout: "ignore",
      stderr: "ignore",
    });
    const config = parseObserverConfig(
      ["--listen-address", "127.0.0.1:0", "--nats-url", nats.url],
      { PERISCOPE_NODE_NAME: "obs" },
    );
    observer = await startObserver(config, {
      log: createLogger("observer", "silent"),
      noOps: true,
    });
  }, 30_000);

  afterAll(async () => {
    server?.kill(9);
    await server?.exited;
    await observer?.stop();
    await ns?.destroy();
    await nc?.close();
    await nats?.stop();
  }, 30_000);

  test("flow stats - sums equal the collector's records key for key; ICMP equals what ping sent", async () => {
    const node = `psct-fs-${ns.id}`;
    const records: netflowV1.NetflowRecord[] = [];
    const sub: Subscription = nc.subscribe(subjects.netflows(node), {
      callback: (err, msg) => {
        if (!err) records.push(...fromBinary(netflowV1.NetflowRecordsSchema, msg.data).entries);
      },
    });
    const dev = `${ns.nsA}/sa${ns.id}`;
    const startMs = Date.now();
    const collector = await startCollector(
      parseConfig(
        [
          `--nats-url=${nats.url}`,
          `--node-name=${node}`,
          `--interfaces=${dev}`,
          "--ops-addr=127.0.0.1:0",
          "--log-level=warn",
          "--drops=off",
          "--flow-export=on",
        ],
        {},
      ),
      { log: createLogger("collector", "warn") },
    );
    let stopped = false;
    try {
      await waitFor(
        async () => (await runOk(["ip", "netns", "exec", ns.nsB, "ss", "-ltn"])).includes(":5201"),
        { what: "iperf3 server listening" },
      );
      const ping = await runOk([
        "ip",
        "netns",
        "exec",
        ns.nsA,
        "ping",
        "-c",
        "20",
        "-i",
        "0.01",
        "-q",
        B,
      ]);
      const sent = Number(/(\d+) packets transmitted/.exec(ping)?.[1] ?? -1);
      await runOk(["ip", "netns", "exec", ns.nsA, "iperf3", "-c", B, "-t", "1", "-J"]);
      // the collector's stop evicts every flow it still holds: all records are out
      await collector.stop();
      stopped = true;
      await nc.flush();
      for (const hook of ["ingress", "egress"] as const)
        expect(await tcFilterProgIds(ns.nsA, `sa${ns.id}`, hook)).toEqual([]);

      const client = createClient(
        flowstatsV1.FlowStatsService,
        createConnectTransport({ baseUrl: observer.url, httpVersion: "1.1" }),
      );
      const ours = (s: flowstatsV1.FlowStat) =>
        [A, B].includes(s.sourceIp) && [A, B].includes(s.destinationIp);
      const want = expectedSums(records);
      const total = [...want.values()].reduce((n, s) => n + s.records, 0n);
      const res = await waitForValue(
        async () => {
          const r = await client.getFlowStats({ since: timestampFromMs(startMs - 60_000) });
          const got = r.stats.filter(ours).reduce((n, s) => n + s.records, 0n);
          return got === total && total > 0n ? r : undefined;
        },
        { what: "every published record in GetFlowStats", timeoutMs: 15_000 },
      );
      const got = new Map(
        res.stats
          .filter(ours)
          .map((s) => [
            `${s.sourceIp}|${s.destinationIp}|${s.protocol}|${s.portSide}|${s.port}`,
            { bytes: s.bytes, packets: s.packets, records: s.records },
          ]),
      );
      expect(got).toEqual(want);

      // ICMP echo requests: 84-byte IPv4 packets, as many as ping sent
      const echo = got.get(`${A}|${B}|1|${PortSide.DESTINATION}|0`);
      expect(echo?.packets).toBe(BigInt(sent));
      expect(echo?.bytes).toBe(BigInt(sent * 84));

      // the page's join: edge A->B:tcp/5201 gets the upload one way, the acks the other
      const tcp = new ByteTable(res.stats).forEdge({
        protocol: "tcp",
        port: 5201,
        addrs: [`${A}>${B}`],
      });
      const up = want.get(`${A}|${B}|6|${PortSide.DESTINATION}|5201`);
      const down = want.get(`${B}|${A}|6|${PortSide.SOURCE}|5201`);
      expect(tcp.forward).toEqual({ bytes: up?.bytes ?? -1n, packets: up?.packets ?? -1n });
      expect(tcp.reverse).toEqual({ bytes: down?.bytes ?? -1n, packets: down?.packets ?? -1n });
      // iperf3 sent a second of data: far more bytes up than down
      expect(tcp.forward?.bytes ?? 0n).toBeGreaterThan(1_000_000n);
      expect((tcp.reverse?.bytes ?? 0n) * 10n).toBeLessThan(tcp.forward?.bytes ?? 0n);
      expect(res.lost?.droppedRecords).toBe(0n);
      expect(res.lost?.malformed).toBe(0n);
    } finally {
      sub.unsubscribe();
      if (!stopped) await collector.stop();
    }
  }, 60_000);
});
