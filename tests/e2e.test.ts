/**
 * The whole pipeline with real parts: TC programs in real network namespaces,
 * a real nats-server, the four services as processes, and the observer's
 * gRPC API. Traffic stays inside the namespaces this file creates.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { PodProcess } from "@periscope/devstack";
import {
  type Flow,
  FlowFilterSchema,
  type GetFlowsRequestSchema,
  IPVersion,
  TraceObservationPoint,
  Verdict,
} from "@periscope/proto";
import { loadedProgIds, waitFor } from "@periscope/testing";
import { ROOT, type Stack, startStack, testPrefix } from "./harness.ts";

type FilterInit = MessageInitShape<typeof FlowFilterSchema>;
type RequestInit = MessageInitShape<typeof GetFlowsRequestSchema>;

const NODE = "e2e-node";
const NODE2 = "e2e-node-2";
const HTTP_PORT = 8080;
const UDP_PORT = 9999;
const TCP_SRC_PORT = 41000;
const UDP_SRC_PORT = 41001;

let stack: Stack;
let server: PodProcess | undefined;
let ips: { frontend: string; backend: string; db: string; frontend6: string; db6: string };

async function flows(req: RequestInit = {}): Promise<Flow[]> {
  const out: Flow[] = [];
  for await (const r of stack.client.getFlows({ number: 10_000n, ...req })) {
    if (r.responseTypes.case === "flow") out.push(r.responseTypes.value);
  }
  return out;
}

function tcp(f: Flow) {
  return f.l4?.protocol.case === "TCP" ? f.l4.protocol.value : undefined;
}
function udp(f: Flow) {
  return f.l4?.protocol.case === "UDP" ? f.l4.protocol.value : undefined;
}
function icmp(f: Flow) {
  return f.l4?.protocol.case === "ICMPv4" ? f.l4.protocol.value : undefined;
}

/** Polls GetFlows until `pick` finds what it needs in the result. */
async function eventually<T>(
  req: RequestInit,
  pick: (fs: Flow[]) => T | undefined,
  what: string,
): Promise<T> {
  let found: T | undefined;
  await waitFor(
    async () => {
      found = pick(await flows(req));
      return found !== undefined;
    },
    { timeoutMs: 20_000, intervalMs: 200, what },
  );
  return found as T;
}

beforeAll(async () => {
  stack = await startStack({
    prefix: testPrefix(),
    pods: [{ name: "frontend" }, { name: "backend" }, { name: "db" }, { name: "cache" }],
    // Two simulated nodes: the second collector watches only the cache pod.
    nodes: [
      { name: NODE, pods: ["frontend", "backend", "db"] },
      { name: NODE2, pods: ["cache"] },
    ],
    enrichers: 2,
  });
  const t = stack.topology;
  ips = {
    frontend: t.pod("frontend").ipv4,
    backend: t.pod("backend").ipv4,
    db: t.pod("db").ipv4,
    frontend6: t.pod("frontend").ipv6,
    db6: t.pod("db").ipv6,
  };
  server = t.spawn("backend", [
    "bun",
    "-e",
    `Bun.serve({ hostname: "0.0.0.0", port: ${HTTP_PORT}, fetch: () => new Response("ok") }); console.log("listening");`,
  ]);
  const reader = server.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!new TextDecoder().decode(value).includes("listening"))
    throw new Error("backend server did not start");

  // Known traffic: one HTTP request, one UDP datagram, one ping.
  const curl = await t.exec("frontend", [
    "curl",
    "-sS",
    "--max-time",
    "5",
    "--local-port",
    String(TCP_SRC_PORT),
    `http://${ips.backend}:${HTTP_PORT}/`,
  ]);
  expect(curl.stdout).toBe("ok");
  await t.exec("frontend", [
    "bash",
    "-c",
    `echo hello | nc -u -w1 -p ${UDP_SRC_PORT} ${ips.db} ${UDP_PORT}`,
  ]);
  await t.exec("frontend", ["ping", "-c", "1", "-W", "2", ips.db]);
  await t.exec("frontend", ["ping", "-6", "-c", "1", "-W", "2", ips.db6]);
}, 90_000);

afterAll(async () => {
  server?.kill();
  await stack?.stop();
}, 60_000);

describe("e2e", () => {
  test("e2e - a TCP connection shows as flows with exact addresses, ports, flags and pods", async () => {
    const isOurSyn = (f: Flow) => {
      const t = tcp(f);
      return t?.sourcePort === TCP_SRC_PORT && t.flags?.SYN === true && t.flags.ACK === false;
    };
    const syns = await eventually(
      {},
      (fs) => {
        const s = fs.filter(isOurSyn);
        return s.length >= 2 ? s : undefined;
      },
      "SYN seen leaving frontend and arriving at backend",
    );
    // Once per observation point: two enrichers share the work without duplicating it.
    expect(syns).toHaveLength(2);
    for (const f of syns) {
      expect(f.IP?.source).toBe(ips.frontend);
      expect(f.IP?.destination).toBe(ips.backend);
      expect(tcp(f)?.destinationPort).toBe(HTTP_PORT);
      expect(f.source?.namespace).toBe("demo");
      expect(f.source?.podName).toBe("frontend");
      expect(f.destination?.podName).toBe("backend");
      expect(f.verdict).toBe(Verdict.FORWARDED);
      expect(f.nodeName).toBe(NODE);
      expect(f.Summary).toBe("TCP Flags: SYN");
      expect(f.eventType?.type).toBe(4);
      expect(f.isReply).toBe(false);
      expect(f.interface?.name).toBe("eth0");
      expect(f.source?.identity).toBeGreaterThanOrEqual(256);
      expect(f.destination?.identity).not.toBe(f.source?.identity);
    }
    expect(syns.map((f) => f.traceObservationPoint).sort()).toEqual(
      [TraceObservationPoint.FROM_NETWORK, TraceObservationPoint.TO_NETWORK].sort(),
    );

    const all = await flows();
    const synAck = all.find((f) => {
      const t = tcp(f);
      return t?.destinationPort === TCP_SRC_PORT && t.flags?.SYN === true && t.flags.ACK === true;
    });
    expect(synAck?.IP?.source).toBe(ips.backend);
    expect(synAck?.source?.podName).toBe("backend");
    expect(synAck?.destination?.podName).toBe("frontend");
    expect(synAck?.Summary).toBe("TCP Flags: SYN, ACK");
    expect(synAck?.isReply).toBe(true);
    expect(
      all.some((f) => tcp(f)?.sourcePort === TCP_SRC_PORT && tcp(f)?.flags?.FIN === true),
    ).toBe(true);

    // GetFlows answers oldest first.
    const times = all.map(
      (f) => (f.time?.seconds ?? 0n) * 1_000_000_000n + BigInt(f.time?.nanos ?? 0),
    );
    expect(times).toEqual([...times].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  });

  test("e2e - UDP and ICMP flows carry their ports and types", async () => {
    const u = await eventually(
      {},
      (fs) => fs.find((f) => udp(f)?.sourcePort === UDP_SRC_PORT),
      "UDP datagram",
    );
    expect(u.IP?.source).toBe(ips.frontend);
    expect(u.IP?.destination).toBe(ips.db);
    expect(udp(u)?.destinationPort).toBe(UDP_PORT);
    expect(u.destination?.podName).toBe("db");
    expect(u.Summary).toBe("UDP");

    const all = await flows();
    const req = all.find((f) => icmp(f)?.type === 8 && f.IP?.destination === ips.db);
    const rep = all.find((f) => icmp(f)?.type === 0 && f.IP?.source === ips.db);
    expect(req?.Summary).toBe("ICMPv4 EchoRequest");
    expect(req?.source?.podName).toBe("frontend");
    expect(rep?.Summary).toBe("ICMPv4 EchoReply");
    expect(rep?.destination?.podName).toBe("frontend");
    // Nothing listens on db's UDP port: the kernel answers port unreachable.
    expect(
      all.some((f) => icmp(f)?.type === 3 && icmp(f)?.code === 3 && f.IP?.source === ips.db),
    ).toBe(true);
  });

  interface FilterCase {
    whitelist: FilterInit[];
    blacklist: FilterInit[];
    /** Holds for every returned flow. */
    every: (f: Flow) => boolean;
    /** Holds for at least one returned flow (the known traffic). */
    some: (f: Flow) => boolean;
  }
  test("e2e - IPv6 flows carry addresses, ICMPv6 types and pods", async () => {
    const icmp6 = (f: Flow) => (f.l4?.protocol.case === "ICMPv6" ? f.l4.protocol.value : undefined);
    const req = await eventually(
      {},
      (fs) => fs.find((f) => icmp6(f)?.type === 128 && f.IP?.destination === ips.db6),
      "ICMPv6 echo request to db",
    );
    expect(req.IP?.source).toBe(ips.frontend6);
    expect(req.IP?.ipVersion).toBe(IPVersion.IPv6);
    expect(req.source?.podName).toBe("frontend");
    expect(req.destination?.podName).toBe("db");
    expect(req.Summary).toBe("ICMPv6 EchoRequest");
    expect(req.isReply).toBe(false);
    const rep = (await flows()).find((f) => icmp6(f)?.type === 129 && f.IP?.source === ips.db6);
    expect(rep?.isReply).toBe(true);
    expect(rep?.destination?.podName).toBe("frontend");
  });

  const filterCases: Array<[string, () => FilterCase]> = [
    [
      "protocol udp",
      () => ({
        whitelist: [{ protocol: ["udp"] }],
        blacklist: [],
        every: (f) => udp(f) !== undefined,
        some: (f) => udp(f)?.sourcePort === UDP_SRC_PORT,
      }),
    ],
    [
      "from pod and destination port",
      () => ({
        whitelist: [{ sourcePod: ["demo/frontend"], destinationPort: [String(HTTP_PORT)] }],
        blacklist: [],
        every: (f) => f.source?.podName === "frontend" && tcp(f)?.destinationPort === HTTP_PORT,
        some: (f) => tcp(f)?.sourcePort === TCP_SRC_PORT,
      }),
    ],
    [
      "source and destination ip",
      () => ({
        whitelist: [{ sourceIp: [ips.frontend], destinationIp: [`${ips.db}/32`] }],
        blacklist: [],
        every: (f) => f.IP?.source === ips.frontend && f.IP?.destination === ips.db,
        some: (f) => icmp(f)?.type === 8,
      }),
    ],
    [
      "blacklist tcp and icmp",
      () => ({
        whitelist: [],
        blacklist: [{ protocol: ["tcp", "icmp"] }],
        // Hubble's "icmp" means ICMPv4 and ICMPv6.
        every: (f) =>
          tcp(f) === undefined && icmp(f) === undefined && f.l4?.protocol.case !== "ICMPv6",
        some: (f) => udp(f)?.sourcePort === UDP_SRC_PORT,
      }),
    ],
    [
      "pod on either side",
      () => ({
        whitelist: [{ sourcePod: ["demo/db"] }, { destinationPod: ["demo/db"] }],
        blacklist: [],
        every: (f) => f.source?.podName === "db" || f.destination?.podName === "db",
        some: (f) => icmp(f)?.type === 0,
      }),
    ],
  ];
  test.each(filterCases)(
    "e2e - filter %s selects exactly the matching flows",
    async (_name, make) => {
      const c = make();
      const everything = await flows();
      const got = await flows({
        whitelist: c.whitelist.map((x) => create(FlowFilterSchema, x)),
        blacklist: c.blacklist.map((x) => create(FlowFilterSchema, x)),
      });
      expect(got.length).toBeGreaterThan(0);
      expect(got.every(c.every)).toBe(true);
      expect(got.some(c.some)).toBe(true);
      // Exactly: the flows the predicate picks out of everything stored before the query.
      const ids = new Set(got.map((f) => f.uuid));
      expect(everything.filter(c.every).every((f) => ids.has(f.uuid))).toBe(true);
    },
  );

  test("e2e - verdict DROPPED selects only kernel drops, among them the datagram to db's closed port", async () => {
    const dropped = await eventually(
      { whitelist: [create(FlowFilterSchema, { verdict: [Verdict.DROPPED] })] },
      (fs) => (fs.some((f) => udp(f)?.sourcePort === UDP_SRC_PORT) ? fs : undefined),
      "the UDP datagram's drop",
    );
    for (const f of dropped) {
      expect(f.verdict).toBe(Verdict.DROPPED);
      expect(f.extDropReasonDesc).not.toBe("");
    }
    const u = dropped.find((f) => udp(f)?.sourcePort === UDP_SRC_PORT);
    expect(u?.extDropReasonDesc).toBe("NO_SOCKET");
    expect(u?.IP?.destination).toBe(ips.db);
    expect(u?.nodeName).toBe(NODE);
  });

  test.each([
    ["source_ip", { sourceIp: ["10.0.0.300"] }],
    ["protocol", { protocol: ["bogus"] }],
    ["destination_port", { destinationPort: ["70000"] }],
  ] as Array<[string, FilterInit]>)(
    "e2e - invalid filter %s is InvalidArgument naming the field",
    async (field, f) => {
      const err = await flows({ whitelist: [create(FlowFilterSchema, f)] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage).toContain(field);
    },
  );

  test("e2e - follow delivers new flows while they happen", async () => {
    const abort = new AbortController();
    const srcPort = 41002;
    const seen = (async () => {
      const stream = stack.client.getFlows(
        {
          follow: true,
          since: timestampFromMs(Date.now()),
          whitelist: [create(FlowFilterSchema, { destinationPort: [String(HTTP_PORT)] })],
        },
        { signal: abort.signal },
      );
      for await (const r of stream) {
        if (r.responseTypes.case === "flow" && tcp(r.responseTypes.value)?.sourcePort === srcPort) {
          return r.responseTypes.value;
        }
      }
      return undefined;
    })();
    // `since` covers traffic sent before the stream is fully set up, so no ordering is needed.
    const timer = setTimeout(() => abort.abort(), 20_000);
    await waitFor(
      async () => {
        const r = await stack.topology.exec("frontend", [
          "curl",
          "-sS",
          "--max-time",
          "3",
          "--local-port",
          String(srcPort),
          `http://${ips.backend}:${HTTP_PORT}/`,
        ]);
        return r.code === 0;
      },
      { timeoutMs: 15_000, what: "curl with source port 41002" },
    );
    const f = await seen.catch((e: unknown) => {
      throw new Error(`follow stream ended without the new flow: ${String(e)}`);
    });
    clearTimeout(timer);
    abort.abort();
    expect(f?.IP?.source).toBe(ips.frontend);
    expect(f?.destination?.podName).toBe("backend");
  });

  test("e2e - a malformed raw frame is counted and skipped; the enricher keeps working", async () => {
    const malformed = async () =>
      (await stack.metric("enricher-0", "periscope_enricher_frames_malformed_total")) +
      (await stack.metric("enricher-1", "periscope_enricher_frames_malformed_total"));
    const before = await malformed();
    stack.bus.nc.publish(`periscope.raw.${NODE}.0`, new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0xff]));
    await waitFor(async () => (await malformed()) === before + 1, {
      timeoutMs: 10_000,
      what: "malformed frame counted",
    });
    expect(stack.sup.get("enricher-0")?.exitCode()).toBeNull();
    expect(stack.sup.get("enricher-1")?.exitCode()).toBeNull();
    await stack.topology.exec("backend", ["ping", "-c", "1", "-W", "2", ips.db]);
    await eventually(
      {},
      (fs) => fs.find((f) => icmp(f)?.type === 8 && f.IP?.source === ips.backend),
      "flows after the malformed frame",
    );
  });

  test("e2e - the CLI prints compact and json lines for the same flows", async () => {
    const run = async (args: string[]) => {
      const p = Bun.spawn(
        [
          "bun",
          "run",
          `${ROOT}/cli/src/main.ts`,
          "observe",
          "--server",
          stack.observerAddr,
          ...args,
        ],
        {
          stdout: "pipe",
          stderr: "pipe",
        },
      );
      const [out, err, code] = await Promise.all([
        new Response(p.stdout).text(),
        new Response(p.stderr).text(),
        p.exited,
      ]);
      return { out, err, code };
    };
    const compact = await run([
      "--last",
      "1000",
      "--from-pod",
      "demo/frontend",
      "--to-port",
      String(HTTP_PORT),
    ]);
    expect(compact.code).toBe(0);
    const lines = compact.out.trim().split("\n");
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      expect(l).toMatch(
        /^\w{3} [ \d]\d \d\d:\d\d:\d\d\.\d{3}: demo\/frontend:\d+ \(ID:\d+\) -> demo\/backend:8080 \(ID:\d+\) (to|from)-network FORWARDED \(TCP Flags: [A-Z, ]+\)( \(\S+\[\d+\]( in \S+)?\))?$/,
      );
    }
    const json = await run([
      "--last",
      "1000",
      "--protocol",
      "udp",
      "--node-name",
      NODE,
      "-o",
      "json",
    ]);
    expect(json.code).toBe(0);
    const objs = json.out
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            flow?: { l4?: { UDP?: { source_port?: number } }; node_name?: string };
          },
      );
    expect(objs.some((o) => o.flow?.l4?.UDP?.source_port === UDP_SRC_PORT)).toBe(true);
    expect(objs.every((o) => o.flow?.node_name === NODE)).toBe(true);

    const bad = await run(["--verdict", "BOGUS"]);
    expect(bad.code).not.toBe(0);
    expect(bad.err.toLowerCase()).toContain("verdict");
  });

  test("e2e - ServerStatus counts the flows seen", async () => {
    const s = await stack.client.serverStatus({});
    expect(s.numFlows).toBeGreaterThan(0n);
    expect(s.seenFlows).toBeGreaterThanOrEqual(s.numFlows);
    expect(s.maxFlows).toBe(4095n);
    expect(s.version).toContain("periscope");
  });

  test("e2e - one observer answers for every node", async () => {
    const cache = stack.topology.pod("cache");
    await stack.topology.exec("frontend", ["ping", "-c", "1", "-W", "2", cache.ipv4]);
    // frontend's egress is seen by the first node, cache's ingress by the second.
    const nodes = await eventually(
      {
        whitelist: [
          create(FlowFilterSchema, { destinationPod: ["demo/cache"], protocol: ["icmp"] }),
        ],
      },
      (fs) => {
        const names = new Set(fs.filter((f) => icmp(f)?.type === 8).map((f) => f.nodeName));
        return names.size === 2 ? [...names].sort() : undefined;
      },
      "echo request to cache seen on both nodes",
    );
    expect(nodes).toEqual([NODE, NODE2]);

    const only2 = await flows({ whitelist: [create(FlowFilterSchema, { nodeName: [NODE2] })] });
    expect(only2.length).toBeGreaterThan(0);
    expect(only2.every((f) => f.nodeName === NODE2)).toBe(true);

    const listed: string[] = [];
    for (const n of (await stack.client.getNodes({})).nodes) listed.push(n.name);
    expect(listed.sort()).toEqual([NODE, NODE2]);
    expect((await stack.client.serverStatus({})).numConnectedNodes).toBe(2);
  });

  test("e2e - stopping a collector removes its tc filters and BPF programs, and only its own", async () => {
    const t = stack.topology;
    /** BPF program ids on a pod's eth0 hooks, from tc's own listing. */
    const programs = async (pod: string): Promise<number[]> => {
      const ids: number[] = [];
      for (const dir of ["ingress", "egress"]) {
        const r = await t.exec(pod, ["tc", "filter", "show", "dev", "eth0", dir]);
        for (const m of r.stdout.matchAll(/ id (\d+)/g)) ids.push(Number(m[1]));
      }
      return ids;
    };
    const node1Pods = ["frontend", "backend", "db"];
    const before = (await Promise.all(node1Pods.map(programs))).flat();
    expect(before).toHaveLength(6);
    expect(await programs("cache")).toHaveLength(2);

    expect(await stack.sup.stopOne(`collector-${NODE}`)).toBe(0);

    expect((await Promise.all(node1Pods.map(programs))).flat()).toEqual([]);
    expect(await programs("cache")).toHaveLength(2);
    // The kernel frees a program once its last reference is gone.
    await waitFor(
      async () => {
        const live = await loadedProgIds();
        return before.every((id) => !live.has(id));
      },
      { timeoutMs: 10_000, what: "the stopped collector's programs are freed" },
    );
  });
});
