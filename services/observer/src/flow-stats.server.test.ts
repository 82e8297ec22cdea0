/**
 * FlowStatsService against a real nats-server and a real observer: flow records published
 * on `periscope.netflows.<node>` as a collector publishes them, sums asked over Connect.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import { flowstatsV1, netflowV1 } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitForValue } from "@periscope/testing";
import { parseConfig } from "./config.ts";
import { type RunningObserver, startObserver } from "./server.ts";

const { PortSide } = flowstatsV1;
let nats: LocalNats;
let nc: NatsConnection;
let observer: RunningObserver;
let client: ReturnType<typeof createClient<typeof flowstatsV1.FlowStatsService>>;

function v4(text: string): netflowV1.Ip {
  const [a = 0, b = 0, c = 0, d = 0] = text.split(".").map(Number);
  return create(netflowV1.IpSchema, {
    ipFamily: { case: "ipv4", value: ((a << 24) | (b << 16) | (c << 8) | d) >>> 0 },
  });
}

interface RecInit {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto?: number;
  bytes: bigint;
  packets: bigint;
  endMs: number;
  node?: string;
  duplicate?: boolean;
}

function record(r: RecInit): netflowV1.NetflowRecord {
  return create(netflowV1.NetflowRecordSchema, {
    ethProtocol: 0x0800,
    timeFlowStart: timestampFromMs(r.endMs - 500),
    timeFlowEnd: timestampFromMs(r.endMs),
    network: { srcAddr: v4(r.src), dstAddr: v4(r.dst) },
    transport: { srcPort: r.sport, dstPort: r.dport, protocol: r.proto ?? 6 },
    bytes: r.bytes,
    packets: r.packets,
    duplicate: r.duplicate ?? false,
    node: r.node ?? "node-a",
  });
}

function publish(node: string, recs: netflowV1.NetflowRecord[], lost?: [bigint, bigint]): void {
  const msg = create(netflowV1.NetflowRecordsSchema, {
    entries: recs,
    ...(lost ? { lost: { fallbackLostPackets: lost[0], exportDroppedRecords: lost[1] } } : {}),
  });
  nc.publish(subjects.netflows(node), toBinary(netflowV1.NetflowRecordsSchema, msg));
}

const stat = (
  res: flowstatsV1.GetFlowStatsResponse,
  src: string,
  dst: string,
  port: number,
  side: flowstatsV1.PortSide,
) =>
  res.stats.find(
    (s) => s.sourceIp === src && s.destinationIp === dst && s.port === port && s.portSide === side,
  );

beforeAll(async () => {
  nats = await startLocalNats();
  nc = await connect({ servers: nats.url });
  const config = parseConfig(
    ["--listen-address", "127.0.0.1:0", "--nats-url", nats.url, "--ops-addr", "127.0.0.1:0"],
    { PERISCOPE_NODE_NAME: "obs" },
  );
  observer = await startObserver(config, { log: createLogger("observer", "silent") });
  client = createClient(
    flowstatsV1.FlowStatsService,
    createConnectTransport({ baseUrl: observer.url, httpVersion: "1.1" }),
  );
}, 30_000);

afterAll(async () => {
  await observer?.stop();
  await nc?.close();
  await nats?.stop();
});

describe("FlowStatsService", () => {
  test("without records: an empty answer over the whole window", async () => {
    const res = await client.getFlowStats({});
    expect(res.stats).toHaveLength(0);
    expect(res.bucketMs).toBe(10_000);
    expect(res.lost?.malformed ?? 0n).toBe(0n);
  });

  test("sums equal the published records, both directions, duplicates and bad input left out", async () => {
    const now = Date.now();
    const reqs = [
      record({
        src: "10.1.0.1",
        dst: "10.1.0.2",
        sport: 41000,
        dport: 8080,
        bytes: 1500n,
        packets: 10n,
        endMs: now - 2_000,
      }),
      record({
        src: "10.1.0.1",
        dst: "10.1.0.2",
        sport: 41000,
        dport: 8080,
        bytes: 700n,
        packets: 3n,
        endMs: now - 1_000,
      }),
      record({
        src: "10.1.0.1",
        dst: "10.1.0.2",
        sport: 41001,
        dport: 8080,
        bytes: 60n,
        packets: 1n,
        endMs: now - 1_000,
      }),
    ];
    const replies = [
      record({
        src: "10.1.0.2",
        dst: "10.1.0.1",
        sport: 8080,
        dport: 41000,
        bytes: 90_000n,
        packets: 60n,
        endMs: now - 1_000,
      }),
      record({
        src: "10.1.0.2",
        dst: "10.1.0.1",
        sport: 8080,
        dport: 41001,
        bytes: 52n,
        packets: 1n,
        endMs: now - 1_000,
      }),
      // the same packets at the host side of the veth: not counted again
      record({
        src: "10.1.0.2",
        dst: "10.1.0.1",
        sport: 8080,
        dport: 41000,
        bytes: 90_000n,
        packets: 60n,
        endMs: now - 1_000,
        duplicate: true,
      }),
    ];
    publish("node-a", reqs.slice(0, 2));
    publish("node-a", [...reqs.slice(2), ...replies], [7n, 3n]);
    nc.publish(subjects.netflows("node-a"), new Uint8Array([0xff, 0xff, 0xff]));
    // an address-less record is malformed, its message's other records count
    publish("node-a", [
      create(netflowV1.NetflowRecordSchema, { bytes: 1n, packets: 1n }),
      record({
        src: "10.1.0.9",
        dst: "10.1.0.2",
        sport: 5000,
        dport: 8080,
        bytes: 10n,
        packets: 1n,
        endMs: now - 1_000,
      }),
    ]);
    await nc.flush();
    const res = await waitForValue(
      async () => {
        const r = await client.getFlowStats({ since: timestampFromMs(now - 60_000) });
        return stat(r, "10.1.0.9", "10.1.0.2", 8080, PortSide.DESTINATION) ? r : undefined;
      },
      { what: "the published records in GetFlowStats" },
    );
    const fwd = stat(res, "10.1.0.1", "10.1.0.2", 8080, PortSide.DESTINATION);
    expect(fwd).toMatchObject({ bytes: 2260n, packets: 14n, records: 3n, protocol: 6, nodes: 1 });
    const back = stat(res, "10.1.0.2", "10.1.0.1", 8080, PortSide.SOURCE);
    expect(back).toMatchObject({ bytes: 90_052n, packets: 61n, records: 2n });
    // the same records keyed by the client's ports
    expect(stat(res, "10.1.0.1", "10.1.0.2", 41000, PortSide.SOURCE)?.bytes).toBe(2200n);
    expect(stat(res, "10.1.0.2", "10.1.0.1", 41001, PortSide.DESTINATION)?.bytes).toBe(52n);
    expect(res.lost).toMatchObject({
      collectorLostPackets: 7n,
      collectorDroppedRecords: 3n,
      malformed: 2n,
      droppedRecords: 0n,
    });
    // largest first
    expect(res.stats[0]?.bytes).toBe(90_052n);
    // every record and message accounted for in the metrics
    const metrics = await (await fetch(`http://127.0.0.1:${observer.opsPort}/metrics`)).text();
    const metric = (name: string) =>
      Number(new RegExp(`^periscope_observer_${name} (\\d+)$`, "m").exec(metrics)?.[1] ?? -1);
    expect(metric('flow_stats_records_total{outcome="counted"}')).toBe(6);
    expect(metric('flow_stats_records_total{outcome="duplicate"}')).toBe(1);
    expect(metric('flow_stats_records_total{outcome="malformed"}')).toBe(2);
    expect(metric("flow_stats_messages_total")).toBe(4);
    // 8 keys; 10 when a 10 s bucket edge falls between the first record and the others
    expect([8, 10]).toContain(metric("flow_stats_entries"));
    // only between the given addresses
    const some = await client.getFlowStats({
      since: timestampFromMs(now - 60_000),
      ips: ["10.1.0.1", "10.1.0.2"],
    });
    expect(some.stats.length).toBe(6);
    expect(some.stats.every((s) => s.sourceIp !== "10.1.0.9")).toBe(true);
  });

  test("since/until: a window without the records is empty; the sender's and receiver's node count once", async () => {
    const now = Date.now();
    const r = { src: "10.2.0.1", dst: "10.2.0.2", sport: 50000, dport: 53, proto: 17 };
    publish("node-a", [
      record({ ...r, bytes: 400n, packets: 4n, endMs: now - 1_000, node: "node-a" }),
    ]);
    publish("node-b", [
      record({ ...r, bytes: 400n, packets: 4n, endMs: now - 1_000, node: "node-b" }),
    ]);
    await nc.flush();
    const res = await waitForValue(async () => {
      const x = await client.getFlowStats({ since: timestampFromMs(now - 30_000) });
      const s = stat(x, r.src, r.dst, 53, PortSide.DESTINATION);
      return s?.nodes === 2 ? s : undefined;
    });
    expect(res).toMatchObject({ bytes: 400n, packets: 4n, records: 2n, protocol: 17 });
    const before = await client.getFlowStats({
      since: timestampFromMs(now - 3_600_000),
      until: timestampFromMs(now - 1_800_000),
    });
    expect(before.stats).toHaveLength(0);
    const limited = await client.getFlowStats({ limit: 1 });
    expect(limited.stats).toHaveLength(1);
    expect(limited.omitted).toBeGreaterThan(0);
  });

  test("until before since: InvalidArgument", async () => {
    const now = Date.now();
    const err = await client
      .getFlowStats({ since: timestampFromMs(now), until: timestampFromMs(now - 1) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
  });
});
