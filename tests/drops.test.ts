/**
 * Kernel drops end to end: real namespaces, a real nats-server, the services as
 * processes. A TCP SYN and a UDP datagram to closed ports and a packet an nft rule
 * drops each reach the observer as a DROPPED flow with the kernel's reason and the
 * exact 5-tuple; the CLI prints the reason as text.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { dropLocationsKey, KERNEL_BUCKET, parseStoredDropLocations } from "@periscope/bus";
import {
  DropReason,
  type Flow,
  FlowFilterSchema,
  TraceObservationPoint,
  Verdict,
} from "@periscope/proto";
import { waitFor } from "@periscope/testing";
import { ROOT, type Stack, startStack, testPrefix } from "./harness.ts";

const NODE = "drops-node";
const TCP_CLOSED = 7771;
const UDP_CLOSED = 7772;
const NFT_PORT = 7773;
const SRC = { tcp: 42101, udp: 42102, nft: 42103, udp2: 42104 };

let stack: Stack;
let client: string;
let server: string;

async function drops(): Promise<Flow[]> {
  const out: Flow[] = [];
  const whitelist = [create(FlowFilterSchema, { verdict: [Verdict.DROPPED] })];
  for await (const r of stack.client.getFlows({ number: 10_000n, whitelist })) {
    if (r.responseTypes.case === "flow") out.push(r.responseTypes.value);
  }
  return out;
}

function ports(f: Flow): { proto: string; sport: number; dport: number } | undefined {
  const p = f.l4?.protocol;
  if (p?.case === "TCP" || p?.case === "UDP") {
    return { proto: p.case, sport: p.value.sourcePort, dport: p.value.destinationPort };
  }
  return undefined;
}

/** Waits for the drop flow of one 5-tuple (client -> server). */
async function dropOf(proto: string, sport: number, dport: number): Promise<Flow> {
  let found: Flow | undefined;
  await waitFor(
    async () => {
      found = (await drops()).find((f) => {
        const p = ports(f);
        return (
          f.IP?.source === client &&
          f.IP?.destination === server &&
          p?.proto === proto &&
          p.sport === sport &&
          p.dport === dport
        );
      });
      return found !== undefined;
    },
    {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: `${proto} ${sport}->${dport} drop at the observer`,
    },
  );
  return found as Flow;
}

beforeAll(async () => {
  stack = await startStack({
    prefix: testPrefix(),
    pods: [{ name: "client" }, { name: "server" }],
    nodes: [{ name: NODE, pods: ["client", "server"] }],
    // Only the pods' namespaces: drops elsewhere on this host stay out of the test.
    env: { collector: { PERISCOPE_DROPS: "watched" } },
  });
  const t = stack.topology;
  client = t.pod("client").ipv4;
  server = t.pod("server").ipv4;
  // Ready means connected to NATS; traffic waits until both devices are attached (and
  // their namespaces watched for drops, in the same step).
  await waitFor(
    async () =>
      (await stack.metric(`collector-${NODE}`, "periscope_collector_attached_interfaces")) === 2,
    { timeoutMs: 20_000, what: "collector attached to both pods" },
  );
  // The table lives in the server's netns and goes with it.
  await t.exec("server", [
    "nft",
    `add table inet psct_drop; add chain inet psct_drop in { type filter hook input priority 0; }; add rule inet psct_drop in tcp dport ${NFT_PORT} drop`,
  ]);
  await t.exec("client", [
    "nc",
    "-z",
    "-w",
    "2",
    "-p",
    String(SRC.tcp),
    server,
    String(TCP_CLOSED),
  ]);
  await t.exec("client", [
    "bash",
    "-c",
    `echo hello | nc -u -w1 -p ${SRC.udp} ${server} ${UDP_CLOSED}`,
  ]);
  // The nft rule drops the SYN; nc gives up after 1 s.
  await t.exec("client", ["nc", "-z", "-w", "1", "-p", String(SRC.nft), server, String(NFT_PORT)]);
}, 90_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

describe("drops", () => {
  test("drops - a TCP SYN to a closed port is DROPPED with NO_SOCKET", async () => {
    const f = await dropOf("TCP", SRC.tcp, TCP_CLOSED);
    expect(f.verdict).toBe(Verdict.DROPPED);
    expect(f.eventType?.type).toBe(1);
    expect(f.extDropReasonDesc).toBe("NO_SOCKET");
    expect(f.dropReasonDesc).toBe(DropReason.SOCKET_LOOKUP_FAILED);
    expect(f.eventType?.subType).toBe(DropReason.SOCKET_LOOKUP_FAILED);
    expect(f.l4?.protocol.case === "TCP" && f.l4.protocol.value.flags?.SYN).toBe(true);
    expect(f.Summary).toBe("TCP Flags: SYN");
    expect(f.nodeName).toBe(NODE);
    expect(f.source?.podName).toBe("client");
    expect(f.destination?.podName).toBe("server");
    // Dropped on arrival at the server's eth0, named through the interface registry.
    expect(f.interface?.name).toBe("eth0");
    expect(f.traceObservationPoint).toBe(TraceObservationPoint.UNKNOWN_POINT);
  }, 30_000);

  test("drops - a UDP datagram to a closed port is DROPPED with NO_SOCKET", async () => {
    const f = await dropOf("UDP", SRC.udp, UDP_CLOSED);
    expect(f.extDropReasonDesc).toBe("NO_SOCKET");
    expect(f.Summary).toBe("UDP");
    expect(f.interface?.name).toBe("eth0");
  }, 30_000);

  test("drops - once the node named a drop location, later drops carry the kernel function", async () => {
    await dropOf("UDP", SRC.udp, UDP_CLOSED);
    // The collector names new drop locations every second in KV periscope-kernel.
    const kv = await stack.bus.kvm().open(KERNEL_BUCKET);
    await waitFor(
      async () => {
        const e = await kv.get(dropLocationsKey(NODE));
        if (!e?.value.length) return false;
        const table = parseStoredDropLocations(e.json());
        return [...table.locations.values()].some((sym) => /udp/i.test(sym));
      },
      { timeoutMs: 10_000, what: "the UDP drop location named in KV" },
    );
    await stack.topology.exec("client", [
      "bash",
      "-c",
      `echo again | nc -u -w1 -p ${SRC.udp2} ${server} ${UDP_CLOSED}`,
    ]);
    const f = await dropOf("UDP", SRC.udp2, UDP_CLOSED);
    expect(f.file?.name).toMatch(/udp.*\+0x[0-9a-f]+$/i);
  }, 30_000);

  test("drops - an nft drop rule is DROPPED with NETFILTER_DROP", async () => {
    const f = await dropOf("TCP", SRC.nft, NFT_PORT);
    expect(f.extDropReasonDesc).toBe("NETFILTER_DROP");
    expect(f.dropReasonDesc).toBe(DropReason.POLICY_DENY);
    expect(f.dropReason).toBe(DropReason.POLICY_DENY);
  }, 30_000);

  test("drops - every drop is in a watched namespace and the collector counted them", async () => {
    const all = await drops();
    const pods = new Set([client, server, stack.topology.pod("client").ipv6]);
    for (const f of all) {
      if (f.IP) expect(pods.has(f.IP.source) || pods.has(f.IP.destination)).toBe(true);
      expect(f.extDropReasonDesc).not.toBe("");
    }
    // The collector reads the program's own count every second.
    await waitFor(
      async () =>
        (await stack.metric(`collector-${NODE}`, "periscope_collector_drop_records_total")) >= 3,
      { timeoutMs: 5000, what: "drop_records_total counts the three drops" },
    );
  }, 30_000);

  test("drops - periscope observe --verdict DROPPED prints the kernel reason as text", async () => {
    const p = Bun.spawn(
      [
        "bun",
        "run",
        `${ROOT}/cli/src/main.ts`,
        "observe",
        "--server",
        stack.observerAddr,
        "--last",
        "1000",
        "--verdict",
        "DROPPED",
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect(code).toBe(0);
    const lines = out.trim().split("\n");
    const tcpLine = lines.find((l) => l.includes(`:${SRC.tcp} `));
    // "<>": a drop record carries no connection state, so is_reply is unknown.
    expect(tcpLine).toMatch(
      /: demo\/client:42101 \S+ <> demo\/server:7771 \S+ No socket DROPPED \(TCP Flags: SYN\)( \(\S+\[\d+\]( in \S+)?\))?$/,
    );
    const nftLine = lines.find((l) => l.includes(`:${SRC.nft} `));
    expect(nftLine).toContain("Netfilter drop DROPPED (TCP Flags: SYN)");
  }, 30_000);
});
