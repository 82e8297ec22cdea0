import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { netflowV1 } from "@periscope/proto";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { FlowTable, flowRowJson, flowTableLines, parseFlowsArgs } from "./flows.ts";
import { runCli } from "./main.ts";

const T0 = 1_760_000_000_000;

function v4(text: string): netflowV1.Ip {
  const n = text.split(".").reduce((a, b) => a * 256 + Number(b), 0);
  return create(netflowV1.IpSchema, { ipFamily: { case: "ipv4", value: n } });
}

function v6(bytes: number[]): netflowV1.Ip {
  return create(netflowV1.IpSchema, { ipFamily: { case: "ipv6", value: Uint8Array.from(bytes) } });
}

function rec(o: {
  src: netflowV1.Ip;
  dst: netflowV1.Ip;
  proto: number;
  sp?: number;
  dp?: number;
  bytes: bigint;
  packets: bigint;
  ifname?: string;
  duplicate?: boolean;
  node?: string;
  icmpType?: number;
  srcPod?: [string, string];
  dstPod?: [string, string];
}): netflowV1.NetflowRecord {
  return create(netflowV1.NetflowRecordSchema, {
    ethProtocol: o.src.ipFamily.case === "ipv6" ? 0x86dd : 0x0800,
    direction: 0,
    timeFlowStart: timestampFromMs(T0),
    timeFlowEnd: timestampFromMs(T0 + 2500),
    network: create(netflowV1.NetworkSchema, { srcAddr: o.src, dstAddr: o.dst }),
    transport: create(netflowV1.TransportSchema, {
      srcPort: o.sp ?? 0,
      dstPort: o.dp ?? 0,
      protocol: o.proto,
    }),
    bytes: o.bytes,
    packets: o.packets,
    interface: o.ifname ?? "eth0",
    duplicate: o.duplicate ?? false,
    icmpType: o.icmpType ?? 0,
    node: o.node ?? "",
    ...(o.srcPod
      ? {
          srcEndpoint: create(netflowV1.EndpointSchema, {
            namespace: o.srcPod[0],
            podName: o.srcPod[1],
          }),
        }
      : {}),
    ...(o.dstPod
      ? {
          dstEndpoint: create(netflowV1.EndpointSchema, {
            namespace: o.dstPod[0],
            podName: o.dstPod[1],
          }),
        }
      : {}),
  });
}

function batch(records: netflowV1.NetflowRecord[]): Uint8Array {
  return toBinary(
    netflowV1.NetflowRecordsSchema,
    create(netflowV1.NetflowRecordsSchema, { entries: records }),
  );
}

const A = v4("10.0.0.1");
const B = v4("10.0.0.2");
const C6 = v6([0xfd, 0, ...new Array(13).fill(0), 1]);
const D6 = v6([0xfd, 0, ...new Array(13).fill(0), 2]);

describe("periscope flows - table", () => {
  const all = parseFlowsArgs([], "nats://x");

  test("periscope flows - records of one flow are summed across interfaces, duplicates not", () => {
    const t = new FlowTable();
    t.add("n1", rec({ src: A, dst: B, proto: 6, sp: 1000, dp: 80, bytes: 100n, packets: 2n }), all);
    t.add(
      "n1",
      rec({ src: A, dst: B, proto: 6, sp: 1000, dp: 80, bytes: 50n, packets: 1n, ifname: "veth1" }),
      all,
    );
    t.add(
      "n1",
      rec({
        src: A,
        dst: B,
        proto: 6,
        sp: 1000,
        dp: 80,
        bytes: 999n,
        packets: 9n,
        ifname: "br0",
        duplicate: true,
      }),
      all,
    );
    t.add("n2", rec({ src: A, dst: B, proto: 6, sp: 1000, dp: 80, bytes: 7n, packets: 1n }), all);
    const rows = t.sorted("bytes", 0);
    expect(
      rows.map((r) => [
        r.node,
        r.bytes,
        r.packets,
        r.records,
        r.duplicates,
        [...r.interfaces].sort(),
      ]),
    ).toEqual([
      ["n1", 150n, 3n, 3, 1, ["br0", "eth0", "veth1"]],
      ["n2", 7n, 1n, 1, 0, ["eth0"]],
    ]);
  });

  test("periscope flows - top N by bytes or packets, IPv6 and ICMP rendered", () => {
    const t = new FlowTable();
    t.add(
      "n",
      rec({ src: A, dst: B, proto: 17, sp: 53, dp: 5353, bytes: 10_000n, packets: 10n }),
      all,
    );
    t.add(
      "n",
      rec({ src: C6, dst: D6, proto: 6, sp: 443, dp: 50000, bytes: 5_000n, packets: 50n }),
      all,
    );
    t.add("n", rec({ src: A, dst: B, proto: 1, bytes: 84n, packets: 1n, icmpType: 8 }), all);
    expect(t.sorted("bytes", 2).map((r) => r.proto)).toEqual([17, 6]);
    expect(t.sorted("packets", 1).map((r) => r.proto)).toEqual([6]);
    t.add(
      "n",
      rec({
        src: B,
        dst: A,
        proto: 6,
        sp: 80,
        dp: 9,
        bytes: 1n,
        packets: 1n,
        srcPod: ["shop", "web-1"],
      }),
      all,
    );
    const withPod = t.sorted("bytes", 0).at(-1);
    if (withPod === undefined) throw new Error("no row");
    expect(flowRowJson(withPod)).toMatchObject({ source_pod: "shop/web-1", source: "10.0.0.2" });
    expect(flowTableLines([withPod])[1]).toMatch(
      /^n\s+shop\/web-1 \(10\.0\.0\.2:80\)\s+10\.0\.0\.1:9\s+TCP/,
    );
    const lines = flowTableLines(t.sorted("bytes", 3));
    expect(lines[0]).toMatch(
      /^NODE\s+SOURCE\s+DESTINATION\s+PROTO\s+BYTES\s+PACKETS\s+DURATION\s+INTERFACES$/,
    );
    expect(lines[1]).toMatch(
      /^n\s+10\.0\.0\.1:53\s+10\.0\.0\.2:5353\s+UDP\s+10000\s+10\s+2\.5s\s+eth0$/,
    );
    expect(lines[2]).toMatch(/^n\s+\[fd00::1\]:443\s+\[fd00::2\]:50000\s+TCP\s+5000\s+50/);
    expect(lines[3]).toMatch(/^n\s+10\.0\.0\.1\s+10\.0\.0\.2\s+ICMP 8\/0\s+84\s+1/);
  });

  test.each([
    [
      ["--ip", "10.0.0.2"],
      [17, 1],
    ],
    [["--ip", "fd00::2"], [6]],
    [["--port", "443"], [6]],
    [
      ["--port", "53,443"],
      [17, 6],
    ],
    [["--protocol", "icmp"], [1]],
    [
      ["--protocol", "udp", "--protocol", "6"],
      [17, 6],
    ],
    [["--node", "other"], []],
    [["-n", "shop"], [17]],
    [["--namespace", "kube-system"], [6]],
    [["--pod", "shop/web-1"], [17]],
    [["--pod", "shop/db-0,kube-system/dns"], [6]],
  ])("periscope flows - filter %p keeps protocols %p", (argv, protos) => {
    const opts = parseFlowsArgs(argv, "nats://x");
    const t = new FlowTable();
    t.add(
      "n",
      rec({
        src: A,
        dst: B,
        proto: 17,
        sp: 53,
        dp: 5353,
        bytes: 10_000n,
        packets: 10n,
        srcPod: ["shop", "web-1"],
      }),
      opts,
    );
    t.add(
      "n",
      rec({
        src: C6,
        dst: D6,
        proto: 6,
        sp: 443,
        dp: 50000,
        bytes: 5_000n,
        packets: 50n,
        dstPod: ["kube-system", "dns"],
      }),
      opts,
    );
    t.add("n", rec({ src: A, dst: B, proto: 1, bytes: 84n, packets: 1n, icmpType: 8 }), opts);
    expect(t.sorted("bytes", 0).map((r) => r.proto)).toEqual(protos);
  });

  test.each([
    [["--top", "x"], /--top: expected a number/],
    [["--by", "flows"], /--by: expected bytes or packets/],
    [["-o", "yaml"], /--output: expected table or json/],
    [["--ip", "10.0.0"], /--ip: not an address/],
    [["--port", "70000"], /--port: expected 0..65535/],
    [["--protocol", "sctpx"], /--protocol: expected tcp, udp/],
    [["--interval", "soon"], /--interval: expected a duration/],
    [["--pod", "web-1"], /--pod: expected namespace\/name/],
    [["extra"], /unexpected argument "extra"/],
  ])("periscope flows - bad flags %p are refused", (argv, msg) => {
    expect(() => parseFlowsArgs(argv, "nats://x")).toThrow(msg);
  });
});

describe("periscope flows - live from NATS", () => {
  let nats: LocalNats;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startLocalNats({});
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  test("periscope flows - -f -o json redraws with the summed flows until Ctrl-C", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const ac = new AbortController();
    const done = runCli(
      ["flows", "-f", "--interval", "100ms", "-o", "json", "--top", "1", "--nats", nats.url],
      { out: (l) => out.push(l), err: (l) => err.push(l), signal: ac.signal, server: "" },
    );
    await waitFor(
      () => err.some((l) => l.startsWith("Listening for flow records on periscope.netflows.>")),
      {
        what: "flows subscribed",
      },
    );
    nc.publish(
      "periscope.netflows.node-a",
      batch([
        rec({ src: A, dst: B, proto: 6, sp: 1, dp: 2, bytes: 1000n, packets: 10n }),
        rec({ src: B, dst: A, proto: 6, sp: 2, dp: 1, bytes: 10n, packets: 1n }),
      ]),
    );
    nc.publish(
      "periscope.netflows.node-a",
      batch([rec({ src: A, dst: B, proto: 6, sp: 1, dp: 2, bytes: 234n, packets: 3n })]),
    );
    nc.publish("periscope.netflows.node-a", new Uint8Array([0xff, 0xff, 0xff]));
    await waitFor(() => out.some((l) => l.includes('"bytes":1234')), {
      what: "summed flow printed",
    });
    ac.abort();
    expect(await done).toBe(0);
    const last = out.filter((l) => l.startsWith("{")).at(-1);
    expect(JSON.parse(last ?? "{}")).toMatchObject({
      node: "node-a",
      source: "10.0.0.1",
      destination: "10.0.0.2",
      protocol: "TCP",
      source_port: 1,
      destination_port: 2,
      bytes: 1234,
      packets: 13,
      records: 2,
    });
    expect(out.some((l) => l.startsWith("--- "))).toBe(true);
    expect(err.some((l) => l.includes("message on periscope.netflows.node-a skipped"))).toBe(true);
  });

  test("periscope flows - without -f prints once after the window; unreachable NATS exits 1", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const ac = new AbortController();
    const done = runCli(["flows", "--window", "500ms", "--node", "node-b", "--nats", nats.url], {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      signal: ac.signal,
      server: "",
    });
    await waitFor(() => err.some((l) => l.includes("periscope.netflows.node-b")), {
      what: "subscribed",
    });
    nc.publish(
      "periscope.netflows.node-b",
      batch([rec({ src: C6, dst: D6, proto: 17, sp: 9, dp: 10, bytes: 77n, packets: 1n })]),
    );
    nc.publish(
      "periscope.netflows.node-c",
      batch([rec({ src: A, dst: B, proto: 17, sp: 9, dp: 10, bytes: 1n, packets: 1n })]),
    );
    expect(await done).toBe(0);
    expect(out.length).toBe(2);
    expect(out[1]).toMatch(/^node-b\s+\[fd00::1\]:9\s+\[fd00::2\]:10\s+UDP\s+77\s+1/);
    const bad: string[] = [];
    const code = await runCli(["flows", "--nats", "nats://127.0.0.1:1"], {
      out: () => {},
      err: (l) => bad.push(l),
      signal: ac.signal,
      server: "",
    });
    expect(code).toBe(1);
    expect(bad[0]).toMatch(/cannot reach NATS at nats:\/\/127.0.0.1:1/);
  });
});
