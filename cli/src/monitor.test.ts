import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import { debugTypeName } from "@periscope/flow";
import type { EndpointInfo } from "@periscope/model";
import {
  createVethPair,
  ethernet,
  freePort,
  ipv4,
  type LocalNats,
  startLocalNats,
  tcp,
  type VethPair,
  waitFor,
  waitForValue,
} from "@periscope/testing";
import { createRawFrame, encodeDebugRecord, encodeRawFrame, OBS_TO_NETWORK } from "@periscope/wire";
import { UsageError } from "./args.ts";
import { type MonitorCounts, parseMonitorArgs, printFrame } from "./monitor.ts";
import type { MonitorNames } from "./monitor-format.ts";

const ROOT = resolve(import.meta.dir, "..", "..");
const BPF_OBJECT = resolve(ROOT, "bpf/build/trace.bpf.o");
const canRun = process.getuid?.() === 0 && existsSync(BPF_OBJECT);

const SYN = ethernet(
  { src: "02:00:00:00:00:0a", dst: "02:00:00:00:00:0b", etherType: 0x0800 },
  ipv4({ src: "10.200.0.10", dst: "10.200.0.11", protocol: 6 }, tcp(40000, 8080, ["SYN"])),
);

/** A 56-byte-fixed record (drop or policy verdict) with `SYN` as its capture. */
function fixed56(type: number, subtype: number, fill: (v: DataView, b: Uint8Array) => void) {
  const b = new Uint8Array(56 + SYN.length);
  const v = new DataView(b.buffer);
  b[0] = type;
  b[1] = subtype;
  b[2] = 1;
  v.setUint32(4, 1, true);
  v.setUint32(8, SYN.length, true);
  v.setUint32(12, SYN.length, true);
  v.setBigUint64(16, 1_000_000_000n, true);
  v.setUint32(24, 7, true);
  v.setUint32(32, 0x1234abcd, true);
  v.setUint16(36, 0x0800, false);
  fill(v, b);
  b.set(SYN, 56);
  return b;
}

const dropRecord = fixed56(1, 2, (v, b) => {
  v.setUint32(28, 133, true);
  b[38] = OBS_TO_NETWORK;
});
const verdictRecord = fixed56(5, 0, (v, b) => {
  v.setUint32(28, 42, true);
  b[38] = 2; // L3-L4
  b[39] = 1; // deny
  b[48] = 1; // ingress
  b[49] = 10;
});
const debugRecord = encodeDebugRecord({
  subtype: 9,
  cpu: 0,
  tsBootNs: 1_000_000_000n,
  ifindex: 7,
  flowHash: 0x1234abcd,
  arg1: 1,
  arg2: 2,
  arg3: 3,
  netnsCookie: 0n,
});

const endpoints: Record<string, EndpointInfo> = {
  "10.200.0.10": { namespace: "demo", podName: "frontend", labels: [], id: 11, identity: 1010 },
  "10.200.0.11": { namespace: "demo", podName: "backend", labels: [], id: 12, identity: 1020 },
};
const names: MonitorNames = {
  ifName: (_node, _cookie, ifindex) => (ifindex === 7 ? "veth7" : undefined),
  endpoint: (ip) => endpoints[ip],
  debugType: debugTypeName,
  kernelDropReason: (node, reason) =>
    node === "node-a" && reason === 8 ? "NETFILTER_DROP" : undefined,
};

function print(
  argv: string[],
  records: Uint8Array[],
  extra: { kernelLost?: bigint; kernelLosses?: { cpu: number; count: bigint }[] } = {},
) {
  const out: string[] = [];
  const err: string[] = [];
  const counts: MonitorCounts = { frames: 0, records: 0, printed: 0, malformed: 0 };
  printFrame(
    createRawFrame({ nodeName: "node-a", bootId: "b", seq: 1n, records, ...extra }),
    parseMonitorArgs(argv, "nats://127.0.0.1:4222"),
    names,
    { out: (l) => out.push(l), err: (l) => err.push(l) },
    counts,
  );
  return { out, err, counts };
}

describe("monitor output", () => {
  test("monitor - drop, policy verdict, debug and lost lines", () => {
    const { out } = print([], [dropRecord, verdictRecord, debugRecord], { kernelLost: 3n });
    // Per-CPU losses, when the frame has them, replace the total.
    const perCpu = print([], [], { kernelLost: 4n, kernelLosses: [{ cpu: 1, count: 4n }] }).out;
    out.splice(1, 0, ...perCpu);
    expect(out).toEqual([
      "!!! Lost 3 events from kernel ring buffer on node node-a",
      "!!! Lost 4 events from CPU 1 on node node-a",
      "xx drop (Policy denied) flow 0x1234abcd to endpoint demo/backend, veth7 (ifindex 7): 10.200.0.10:40000 -> 10.200.0.11:8080 tcp SYN",
      "Policy verdict log: flow 0x1234abcd, local EP ID 12, remote ID 1010, proto 6, ingress, action deny, match L3-L4, rule 42, veth7 (ifindex 7), 10.200.0.10:40000 -> 10.200.0.11:8080 tcp SYN",
      "-- debug DBG_CT_CREATED: flow 0x1234abcd, veth7 (ifindex 7), arg1=0x1 arg2=0x2 arg3=0x3",
    ]);
  });

  test("monitor - kernel drops show the reason's name from the node's table", () => {
    const kernelDrop = fixed56(1, 1, (v) => v.setUint32(28, 8, true));
    const unknown = fixed56(1, 1, (v) => v.setUint32(28, 9, true));
    expect(print([], [kernelDrop, unknown]).out.map((l) => l.slice(0, 40))).toEqual([
      "xx drop (NETFILTER_DROP) flow 0x1234abcd",
      "xx drop (kernel reason 9) flow 0x1234abc",
    ]);
  });

  test("monitor - --type and --from/--to select events", () => {
    const all = [dropRecord, verdictRecord, debugRecord];
    expect(print(["--type", "drop"], all).out).toHaveLength(1);
    expect(print(["-t", "debug", "--type=policy-verdict"], all).out).toHaveLength(2);
    expect(print(["--from", "10.200.0.0/24", "--to", "demo/backend"], all).out).toHaveLength(2);
    expect(print(["--from", "demo/backend"], all).out).toHaveLength(0);
    expect(print(["--to", "10.200.0.10"], all).out).toHaveLength(0);
  });

  test("monitor - -v adds a header and a hex dump; -j prints JSON objects", () => {
    const v = print(["-v"], [dropRecord]).out;
    expect(v[0]).toMatch(/^CPU 01: .* node node-a drop, 54 bytes \(54 captured\)$/);
    expect(v[2]).toBe(
      "00000000  02 00 00 00 00 0b 02 00  00 00 00 0a 08 00 45 00  |..............E.|",
    );
    expect(v).toHaveLength(2 + Math.ceil(SYN.length / 16));
    const j = print(["-j"], [verdictRecord]).out.map((l) => JSON.parse(l));
    expect(j[0]).toMatchObject({
      type: "policy-verdict",
      node: "node-a",
      action: "deny",
      match: "L3-L4",
      direction: "ingress",
      source: "10.200.0.10",
      destinationPort: 8080,
      tcpFlags: "SYN",
      ifname: "veth7",
    });
  });

  test("monitor - a malformed record is reported and counted, the rest printed", () => {
    const { out, err, counts } = print([], [dropRecord.subarray(0, 20), debugRecord]);
    expect(out).toHaveLength(1);
    expect(counts.malformed).toBe(1);
    expect(err[0]).toContain("drop record too short: 20 bytes");
  });

  test.each([
    [["--type", "bogus"], "--type"],
    [["--from", "10.0.0.0/33"], "bad prefix length"],
    [["--to", "not an address"], "expected an IP, a CIDR or namespace/pod"],
  ])("monitor - bad flag %p is a usage error", (argv, message) => {
    expect(() => parseMonitorArgs(argv, "nats://x")).toThrow(UsageError);
    expect(() => parseMonitorArgs(argv, "nats://x")).toThrow(message);
  });
});

/** A process whose stdout and stderr lines are collected as they come. */
function spawnLines(argv: string[], env: Record<string, string>) {
  const proc = Bun.spawn(argv, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const out: string[] = [];
  const err: string[] = [];
  const pump = async (s: ReadableStream<Uint8Array>, into: string[]) => {
    let rest = "";
    const dec = new TextDecoder();
    for await (const chunk of s) {
      const parts = (rest + dec.decode(chunk, { stream: true })).split("\n");
      rest = parts.pop() ?? "";
      into.push(...parts);
    }
    if (rest) into.push(rest);
  };
  const done = Promise.all([pump(proc.stdout, out), pump(proc.stderr, err)]);
  return { proc, out, err, done };
}

describe.skipIf(!canRun)("periscope monitor (root, real collector and nats-server)", () => {
  let nats: LocalNats;
  let nc: NatsConnection;
  let pair: VethPair;
  const procs: ReturnType<typeof spawnLines>[] = [];

  beforeAll(async () => {
    nats = await startLocalNats({});
    nc = await connect({ servers: nats.url });
    pair = await createVethPair();
  });
  afterAll(async () => {
    for (const p of procs) p.proc.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.proc.exited));
    await pair?.destroy();
    await nc?.close();
    await nats?.stop();
  });

  test("monitor - trace, agent and hand-built records from a live collector; Ctrl-C exits 0", async () => {
    const node = `psct-mon-${pair.nsA}`;
    const monitor = spawnLines(
      ["bun", "run", "cli/src/main.ts", "monitor", "-j", "--node", node, "--nats", nats.url],
      {},
    );
    procs.push(monitor);
    await waitFor(() => monitor.err.some((l) => l.startsWith("Listening for events")), {
      what: "monitor subscribed",
    });
    const opsPort = await freePort();
    const collector = spawnLines(["bun", "run", "services/collector/src/main.ts"], {
      PERISCOPE_NATS_URL: nats.url,
      PERISCOPE_NODE_NAME: node,
      PERISCOPE_INTERFACES: `${pair.nsA}/${pair.ifA}`,
      PERISCOPE_AGGREGATION: "none", // every echo request is counted
      PERISCOPE_OPS_ADDR: `127.0.0.1:${opsPort}`,
      PERISCOPE_LOG_LEVEL: "warn",
    });
    procs.push(collector);
    await waitFor(`http://127.0.0.1:${opsPort}/readyz`, {
      timeoutMs: 20_000,
      what: "collector ready",
    });
    // Ready means connected; the attach (an agent event) comes after.
    await waitFor(() => monitor.out.some((l) => l.includes("ENDPOINT_CREATED")), {
      timeoutMs: 15_000,
      what: "the collector's attach event",
    });
    const ping = Bun.spawn(
      ["ip", "netns", "exec", pair.nsA, "ping", "-c", "3", "-i", "0.1", "-W", "2", pair.ipB],
      { stdout: "ignore", stderr: "ignore" },
    );
    expect(await ping.exited).toBe(0);
    nc.publish(
      subjects.raw(node, 0),
      encodeRawFrame({
        nodeName: node,
        seq: 1n,
        bootId: "hand-built",
        records: [dropRecord, verdictRecord, debugRecord],
        collectorLost: 2n,
      }),
    );
    const parsed = () => monitor.out.map((l) => JSON.parse(l) as Record<string, unknown>);
    await waitForValue(
      () => {
        const evs = parsed();
        const echoes = evs.filter(
          (e) => e.type === "trace" && String(e.summary).includes("EchoRequest"),
        );
        return echoes.length >= 3 && evs.some((e) => e.type === "debug") ? evs : undefined;
      },
      { timeoutMs: 15_000, what: "3 echo requests and the hand-built records" },
    ).catch((err) => {
      console.error(
        parsed().map((e) => `${e.type} ${e.summary ?? ""} ${e.reasonText ?? ""}`),
        monitor.err,
        collector.err,
      );
      throw err;
    });
    collector.proc.kill("SIGTERM");
    expect(await collector.proc.exited).toBe(0);
    await waitFor(() => monitor.out.some((l) => l.includes("collector_stopped")), {
      what: "collector_stopped agent event",
    });
    monitor.proc.kill("SIGINT");
    expect(await monitor.proc.exited).toBe(0);
    await monitor.done;

    const evs = parsed();
    const request = evs.find(
      (e) => e.type === "trace" && String(e.summary).includes("EchoRequest"),
    );
    expect(request).toMatchObject({
      node,
      source: pair.ipA,
      destination: pair.ipB,
      observationPoint: "to-network",
      ifname: pair.ifA,
      summary: `${pair.ipA} -> ${pair.ipB} icmp EchoRequest`,
    });
    // Kernel drops in the namespaces may show up too; the hand-built one is a policy drop.
    expect(evs.filter((e) => e.type === "drop" && e.dropSource === "policy")).toHaveLength(1);
    expect(evs.filter((e) => e.type === "policy-verdict")).toHaveLength(1);
    expect(evs.find((e) => e.type === "lost")).toMatchObject({
      source: "collector queue",
      lost: 2,
    });
    const agent = evs.filter((e) => e.type === "agent") as {
      agentEvent: {
        type: string;
        endpointUpdate?: { labels: string[] };
        unknown?: { type: string };
      };
    }[];
    const kinds = agent.map((a) => a.agentEvent.unknown?.type ?? a.agentEvent.type);
    expect(kinds).toEqual([
      "AGENT_STARTED",
      "program_loaded",
      "ENDPOINT_CREATED",
      "ENDPOINT_DELETED",
      "collector_stopped",
    ]);
    expect(agent[2]?.agentEvent.endpointUpdate?.labels).toContain(`interface=${pair.ifA}`);
    expect(agent[3]?.agentEvent.endpointUpdate?.labels).toContain("reason=stopped");
    expect(monitor.err.at(-1)).toMatch(/^Received \d+ frames/);
  }, 60_000);
  test("monitor - real policy verdicts, policy and kernel drops and debug records as text lines", async () => {
    const node = `psct-mon2-${pair.nsA}`;
    const monitor = spawnLines(
      ["bun", "run", "cli/src/main.ts", "monitor", "--node", node, "--nats", nats.url],
      {},
    );
    procs.push(monitor);
    await waitFor(() => monitor.err.some((l) => l.startsWith("Listening for events")), {
      what: "monitor subscribed",
    });
    const opsPort = await freePort();
    const collector = spawnLines(["bun", "run", "services/collector/src/main.ts"], {
      PERISCOPE_NATS_URL: nats.url,
      PERISCOPE_NODE_NAME: node,
      PERISCOPE_INTERFACES: `${pair.nsA}/${pair.ifA}`,
      PERISCOPE_OPS_ADDR: `127.0.0.1:${opsPort}`,
      PERISCOPE_LOG_LEVEL: "warn",
    });
    procs.push(collector);
    await waitFor(() => monitor.out.some((l) => l.includes("ENDPOINT_CREATED")), {
      timeoutMs: 20_000,
      what: "the collector's attach event",
    });
    // Debug records on, over the collector's settings subject (it subscribes after attaching).
    await waitForValue(
      () =>
        nc
          .request(subjects.ctl(node, "settings"), new TextEncoder().encode('{"debug":true}'), {
            timeout: 2000,
          })
          .catch(() => undefined),
      { what: "settings reply" },
    );
    const policyFile = `/tmp/psct-monitor-policy-${process.pid}.json`;
    await Bun.write(
      policyFile,
      JSON.stringify({
        name: `mon-${process.pid}`,
        rules: [
          {
            id: 40_000 + (process.pid % 10_000),
            name: "no-udp-9999",
            action: "deny",
            direction: "egress",
            interface: `${pair.nsA}/${pair.ifA}`,
            peers: [`${pair.ipB}/32`],
            protocol: "udp",
            ports: "9999",
          },
        ],
      }),
    );
    const apply = Bun.spawn(
      ["bun", "run", "cli/src/main.ts", "policy", "apply", "-f", policyFile, "--nats", nats.url],
      { cwd: ROOT, stdout: "ignore", stderr: "inherit" },
    );
    expect(await apply.exited).toBe(0);
    rmSync(policyFile, { force: true });
    const udp = (port: number) =>
      Bun.spawn(
        ["ip", "netns", "exec", pair.nsA, "bash", "-c", `echo hi > /dev/udp/${pair.ipB}/${port}`],
        { stdout: "ignore", stderr: "ignore" },
      ).exited;
    // The policy is in force within a second of the apply: send until its verdict shows.
    await waitFor(
      async () => {
        await udp(9999);
        return monitor.out.some((l) => l.startsWith("Policy verdict log:"));
      },
      { timeoutMs: 15_000, intervalMs: 300, what: "a policy verdict line" },
    );
    await udp(9); // nothing listens: the kernel in the peer namespace drops it (NO_SOCKET)
    const ping = Bun.spawn(
      ["ip", "netns", "exec", pair.nsA, "ping", "-c", "1", "-W", "2", pair.ipB],
      { stdout: "ignore", stderr: "ignore" },
    );
    expect(await ping.exited).toBe(0);
    const to = (port: number) => `${pair.ipA}:\\d+ -> ${pair.ipB}:${port} udp`;
    const want = [
      new RegExp(
        `^Policy verdict log: flow 0x[0-9a-f]{8}, local EP ID 0, remote ID 0, proto 17, egress, action deny, match L3-L4, rule \\d+, ${pair.ifA} \\(ifindex ${pair.ifindexA}\\), ${to(9999)}$`,
      ),
      new RegExp(
        `^xx drop \\(Policy denied\\) flow 0x[0-9a-f]{8} to endpoint 0, ${pair.ifA} \\(ifindex ${pair.ifindexA}\\): ${to(9999)}$`,
      ),
      new RegExp(`^xx drop \\(NO_SOCKET\\) flow 0x[0-9a-f]{8} to endpoint 0, .*: ${to(9)}$`),
      /^-- debug DBG_CT_CREATED4: flow 0x[0-9a-f]{8}, /,
      new RegExp(
        `^-> network ${pair.ifA} \\(ifindex ${pair.ifindexA}\\) flow 0x[0-9a-f]{8} state new orig-len 98: ${pair.ipA} -> ${pair.ipB} icmp EchoRequest$`,
      ),
    ];
    await waitFor(() => want.every((re) => monitor.out.some((l) => re.test(l))), {
      timeoutMs: 15_000,
      what: "verdict, policy drop, kernel drop, debug and trace lines",
    }).catch((err) => {
      console.error(
        want.filter((re) => !monitor.out.some((l) => re.test(l))),
        monitor.out.slice(-40),
      );
      throw err;
    });
    const del = Bun.spawn(
      [
        "bun",
        "run",
        "cli/src/main.ts",
        "policy",
        "delete",
        `mon-${process.pid}`,
        "--nats",
        nats.url,
      ],
      { cwd: ROOT, stdout: "ignore", stderr: "inherit" },
    );
    expect(await del.exited).toBe(0);
    collector.proc.kill("SIGTERM");
    expect(await collector.proc.exited).toBe(0);
    monitor.proc.kill("SIGINT");
    expect(await monitor.proc.exited).toBe(0);
  }, 60_000);
});
