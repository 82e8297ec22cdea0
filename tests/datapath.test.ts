/**
 * The kernel's connection table end to end: real namespaces, a real
 * nats-server, the services as processes with two enricher replicas. The
 * trace program decides trace_reason and is_reply (so any enricher replica
 * gets them right), decodes L3 devices (tun) from the IP header, and at
 * aggregation medium reports a handful of packets per connection where none
 * reports every one. The level is switched at run time over
 * periscope.ctl.<node>.settings.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { BRIDGE_IPV4, BRIDGE_IPV6, type PodProcess } from "@periscope/devstack";
import { type Flow, type GetFlowsRequestSchema, TraceReason } from "@periscope/proto";
import { runOk, waitFor } from "@periscope/testing";
import { type Stack, startStack, testPrefix } from "./harness.ts";

type RequestInit = MessageInitShape<typeof GetFlowsRequestSchema>;

const NODE = "dp-node";
const HTTP_PORT = 8080;
const UDP_PORT = 9053;
const TCP_SRC = 42000;
const UDP_SRC = 42001;
const TUN_LOCAL = "10.251.0.1";
const TUN_PEER = "10.251.0.2";
const PINGS = 40;

let stack: Stack;
let prefix: string;
const servers: PodProcess[] = [];
let ip: { frontend: string; backend: string; db: string; backend6: string; db6: string };

/** Trace flows (event type 4) the observer holds; drops and verdicts are others' business. */
async function flows(req: RequestInit = {}): Promise<Flow[]> {
  const out: Flow[] = [];
  for await (const r of stack.client.getFlows({ number: 100_000n, ...req })) {
    if (r.responseTypes.case === "flow" && r.responseTypes.value.eventType?.type === 4) {
      out.push(r.responseTypes.value);
    }
  }
  return out;
}

const l4 = (f: Flow) => f.l4?.protocol;
const tcp = (f: Flow) =>
  l4(f)?.case === "TCP"
    ? (l4(f)?.value as {
        sourcePort: number;
        destinationPort: number;
        flags?: { SYN: boolean; ACK: boolean; FIN: boolean };
      })
    : undefined;
const udp = (f: Flow) =>
  l4(f)?.case === "UDP"
    ? (l4(f)?.value as { sourcePort: number; destinationPort: number })
    : undefined;
const icmpType = (f: Flow) => {
  const p = l4(f);
  return p?.case === "ICMPv4" || p?.case === "ICMPv6" ? p.value.type : undefined;
};

/** Waits until `pick` finds what it needs in the observer's flows. */
async function eventually<T>(pick: (fs: Flow[]) => T | undefined, what: string): Promise<T> {
  let found: T | undefined;
  await waitFor(
    async () => {
      found = pick(await flows());
      return found !== undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250, what },
  );
  return found as T;
}

/** Sends a settings request to the collector and returns its reply. */
async function settings(req: Record<string, unknown>): Promise<Record<string, unknown>> {
  const msg = await stack.bus.nc.request(
    `periscope.ctl.${NODE}.settings`,
    new TextEncoder().encode(JSON.stringify(req)),
    { timeout: 5000 },
  );
  return JSON.parse(new TextDecoder().decode(msg.data));
}

/** Echo requests and replies between frontend and `dst` (any observation point). */
const echoesTo = (fs: Flow[], dst: string) =>
  fs.filter(
    (f) =>
      (f.IP?.destination === dst && (icmpType(f) === 8 || icmpType(f) === 128)) ||
      (f.IP?.source === dst && (icmpType(f) === 0 || icmpType(f) === 129)),
  );

beforeAll(async () => {
  prefix = testPrefix();
  stack = await startStack({
    prefix,
    pods: [{ name: "frontend" }, { name: "backend" }, { name: "db" }],
    nodes: [
      {
        name: NODE,
        interfaces: ["frontend", "backend", "db"]
          .map((p) => `${prefix}${p}/eth0`)
          .concat(`${prefix}frontend/tun0`)
          .join(","),
      },
    ],
    enrichers: 2,
  });
  const t = stack.topology;
  ip = {
    frontend: t.pod("frontend").ipv4,
    backend: t.pod("backend").ipv4,
    db: t.pod("db").ipv4,
    backend6: t.pod("backend").ipv6,
    db6: t.pod("db").ipv6,
  };
  // A TCP server on backend and a UDP echo server on db.
  const http = t.spawn("backend", [
    "bun",
    "-e",
    `Bun.serve({ hostname: "0.0.0.0", port: ${HTTP_PORT}, fetch: () => new Response("ok") }); console.log("up");`,
  ]);
  const echo = t.spawn("db", [
    "bun",
    "-e",
    `await Bun.udpSocket({ port: ${UDP_PORT}, socket: { data(s, buf, port, addr) { s.send(buf, port, addr); } } }); console.log("up");`,
  ]);
  servers.push(http, echo);
  for (const s of servers) {
    const reader = s.stdout.getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    if (!new TextDecoder().decode(value).includes("up")) throw new Error("server did not start");
  }
}, 120_000);

afterAll(async () => {
  for (const s of servers) s.kill();
  await stack?.stop();
}, 60_000);

describe("datapath", () => {
  test("datapath - trace_reason and is_reply come from the kernel for TCP, UDP and ICMP", async () => {
    const t = stack.topology;
    const curl = await t.exec("frontend", [
      "curl",
      "-sS",
      "--max-time",
      "5",
      "--local-port",
      String(TCP_SRC),
      `http://${ip.backend}:${HTTP_PORT}/`,
    ]);
    expect(curl.stdout).toBe("ok");
    const udpOut = await t.exec("frontend", [
      "bash",
      "-c",
      `echo hello | nc -u -w1 -p ${UDP_SRC} ${ip.db} ${UDP_PORT}`,
    ]);
    expect(udpOut.stdout.trim()).toBe("hello");
    await t.exec("frontend", ["ping", "-c", "2", "-i", "0.2", "-W", "2", ip.db]);

    const fs = await eventually((all) => {
      const ours = all.filter(
        (f) =>
          tcp(f)?.sourcePort === TCP_SRC ||
          tcp(f)?.destinationPort === TCP_SRC ||
          udp(f)?.sourcePort === UDP_SRC ||
          udp(f)?.destinationPort === UDP_SRC ||
          echoesTo([f], ip.db).length > 0,
      );
      const fins = ours.filter((f) => tcp(f)?.flags?.FIN).length;
      // both FINs at both ends, both UDP datagrams twice, 2 pings x 2 packets x 2 ends
      return fins >= 4 &&
        ours.filter((f) => udp(f)).length >= 4 &&
        echoesTo(ours, ip.db).length >= 8
        ? ours
        : undefined;
    }, "TCP, UDP and ICMP flows of the test traffic");

    const fromClient = (f: Flow) =>
      tcp(f)?.sourcePort === TCP_SRC || udp(f)?.sourcePort === UDP_SRC || icmpType(f) === 8;
    for (const f of fs) {
      // every packet the kernel tracked: a reason, and is_reply set accordingly
      expect(f.traceReason).not.toBe(TraceReason.TRACE_REASON_UNKNOWN);
      expect(f.isReply).toBe(!fromClient(f));
      if (f.isReply) expect(f.traceReason).toBe(TraceReason.REPLY);
    }
    const syns = fs.filter((f) => tcp(f)?.flags?.SYN && !tcp(f)?.flags?.ACK);
    expect(syns).toHaveLength(2); // leaving frontend, arriving at backend
    expect(syns.every((f) => f.traceReason === TraceReason.NEW && f.isReply === false)).toBe(true);
    const synAcks = fs.filter((f) => tcp(f)?.flags?.SYN && tcp(f)?.flags?.ACK);
    expect(synAcks.every((f) => f.traceReason === TraceReason.REPLY && f.isReply)).toBe(true);
    const later = fs.filter((f) => tcp(f)?.sourcePort === TCP_SRC && !tcp(f)?.flags?.SYN);
    expect(later.length).toBeGreaterThan(0);
    expect(later.every((f) => f.traceReason === TraceReason.ESTABLISHED)).toBe(true);
    const udpReqs = fs.filter((f) => udp(f)?.sourcePort === UDP_SRC);
    expect(udpReqs.map((f) => f.traceReason)).toEqual([TraceReason.NEW, TraceReason.NEW]);
    const udpReplies = fs.filter((f) => udp(f)?.destinationPort === UDP_SRC);
    expect(udpReplies.map((f) => f.traceReason)).toEqual([TraceReason.REPLY, TraceReason.REPLY]);
    const pings = echoesTo(fs, ip.db).filter((f) => icmpType(f) === 8);
    expect(pings.map((f) => f.traceReason).sort()).toEqual(
      [TraceReason.NEW, TraceReason.NEW, TraceReason.ESTABLISHED, TraceReason.ESTABLISHED].sort(),
    );
  }, 60_000);

  test("datapath - a tun device (no L2 header) is decoded from the IP header", async () => {
    const ns = `${prefix}frontend`;
    await runOk(["ip", "-n", ns, "tuntap", "add", "dev", "tun0", "mode", "tun"]);
    await runOk(["ip", "-n", ns, "addr", "add", TUN_LOCAL, "peer", TUN_PEER, "dev", "tun0"]);
    await runOk(["ip", "-n", ns, "link", "set", "tun0", "up"]);
    // Nothing reads the tun: the echo requests pass tc egress and go nowhere. The
    // collector attaches tun0 when it appears; ping until its packets show up.
    const onTun = (fs: Flow[]) =>
      fs.filter((f) => f.IP?.source === TUN_LOCAL && f.IP?.destination === TUN_PEER);
    let found: Flow[] = [];
    await waitFor(
      async () => {
        await stack.topology.exec("frontend", ["ping", "-c", "1", "-W", "1", TUN_PEER]);
        found = onTun(await flows());
        return found.length > 0;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: "echo requests on tun0" },
    );
    const f = found[0] as Flow;
    expect(f.ethernet).toBeUndefined();
    expect(f.interface?.name).toBe("tun0");
    expect(icmpType(f)).toBe(8);
    expect(f.Summary).toBe("ICMPv4 EchoRequest");
    expect(f.traceReason).toBe(TraceReason.NEW);
    expect(f.isReply).toBe(false);
  }, 60_000);

  test("datapath - aggregation none reports every packet, medium a few per connection", async () => {
    const t = stack.topology;
    // One ping run per level, each to an address no earlier test pinged (its own
    // connection). Pod addresses are seen at two devices (frontend's and the pod's
    // eth0), the bridge's only at frontend's.
    const runs = [
      { level: "none", dst: ip.backend, ends: 2 },
      { level: "low", dst: ip.backend6, ends: 2 },
      { level: "medium", dst: ip.db6, ends: 2 },
      { level: "maximum", dst: BRIDGE_IPV4, ends: 1 },
    ] as const;
    for (const { level, dst, ends } of runs) {
      const reply = await settings({ aggregation: level, aggregationIntervalMs: 60_000 });
      expect(reply.aggregation).toBe(level);
      const ping = await t.exec("frontend", [
        "ping",
        "-c",
        String(PINGS),
        "-i",
        "0.01",
        "-W",
        "2",
        dst,
      ]);
      expect(ping.stdout).toContain(`${PINGS} received`);
      // none/low (ICMP has no pure ACKs): every packet; medium/maximum: the first
      // request and the first reply at each end
      const want = (level === "none" || level === "low" ? 2 * PINGS : 2) * ends;
      await eventually(
        (fs) => (echoesTo(fs, dst).length >= want ? true : undefined),
        `${want} echo flows at aggregation ${level}`,
      );
    }
    // A last connection: once its flows are in, nothing of the runs is still in flight.
    await settings({ aggregation: "none" });
    await t.exec("frontend", ["ping", "-c", "1", "-W", "2", BRIDGE_IPV6]);
    await eventually(
      (fs) => (echoesTo(fs, BRIDGE_IPV6).length >= 2 ? true : undefined),
      "last ping",
    );
    const fs = await flows();
    const counts = Object.fromEntries(runs.map((r) => [r.level, echoesTo(fs, r.dst).length]));
    console.log(`echo flows per level for ${PINGS} pings:`, counts);
    expect(counts).toEqual({ none: 4 * PINGS, low: 4 * PINGS, medium: 4, maximum: 2 });
  }, 120_000);
});
