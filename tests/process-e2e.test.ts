/**
 * Processes on flows end to end: real nats-server, collector (process events on), enricher
 * and observer as child processes; curl and nc run in test network namespaces and test
 * cgroups, and their flows, read back through GetFlows and `periscope observe`, carry
 * their pid, binary, arguments, uid and cgroup. A connection opened before the collector
 * starts is attributed through the /proc backfill; traffic a third namespace routes for a
 * sender with no socket on this host stays unattributed. The enricher's cache and join
 * metrics are checked, and pass `promtool check metrics`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { cgroupV2Root } from "@periscope/bpf";
import { deleteNetns, promtoolCheckMetrics, runOk, waitFor } from "@periscope/devstack";
import { flowProcess } from "@periscope/flow";
import { type Flow, FlowFilterSchema, type processV1, Verdict } from "@periscope/proto";
import { removeCgroup } from "@periscope/testing";
import { buildFilters } from "../cli/src/filters.ts";
import { ROOT, type Stack, startStack, sumMetric, testPrefix } from "./harness.ts";

const NODE = "proc-e2e";
const HTTP_PORT = 8080;
const UDP_PORT = 9090;
const OLD_PORT = 7000;
const FWD_PORT = 7777;
/** Nothing listens here: the kernel drops the SYN (no socket). */
const CLOSED_PORT = 7771;
const NOBODY = 65534;
const CONTAINER_ID = "5e2e".repeat(16);

/**
 * The kernel reports pids of the initial PID namespace; the minimal-root check runs the
 * suite in a PID namespace of its own (and without curl), so this file runs only outside it.
 */
const OWN_PID_NS = process.env.PERISCOPE_TEST_IN_MINIMAL_ROOT === "1";
if (OWN_PID_NS) {
  console.log(
    "SKIP process end-to-end tests: PERISCOPE_TEST_IN_MINIMAL_ROOT=1 runs in its own PID namespace",
  );
}

const prefix = testPrefix();
const ns = {
  cli: `${prefix}cli`,
  srv: `${prefix}srv`,
  fx: `${prefix}fx`,
  fr: `${prefix}fr`,
  fy: `${prefix}fy`,
};
/** Our own namespaces (the pods' are the harness's). */
const ownNetns: string[] = [];
/** Cgroups made here, children first at removal. */
const cgroups: string[] = [];
const children: Bun.Subprocess[] = [];
let stack: Stack | undefined;
let cliCg = { dir: "", id: 0n };
let srvCg = { dir: "", id: 0n };
let oldClient: Bun.Subprocess<"pipe", "pipe", "pipe"> | undefined;
let oldServerOut = "";

const st = (): Stack => {
  if (!stack) throw new Error("stack not started");
  return stack;
};

function makeCgroup(rel: string): { dir: string; id: bigint } {
  const dir = join(cgroupV2Root(), rel);
  mkdirSync(dir);
  cgroups.push(dir);
  return { dir, id: BigInt(statSync(dir).ino) };
}

/** argv run in cgroup `cg` and netns `netns`; the process keeps the shell's pid through both execs. */
function inCgroup(cg: string, netns: string, argv: string[]): string[] {
  return [
    "/bin/sh",
    "-c",
    `echo $$ > ${cg}/cgroup.procs && exec ip netns exec ${netns} "$@"`,
    "sh",
    ...argv,
  ];
}

/** Starts argv in a cgroup and netns; killed in afterAll if still running. */
function spawnIn<In extends "pipe" | "ignore" | Blob>(
  cg: string,
  netns: string,
  argv: string[],
  stdin: In,
) {
  const p = Bun.spawn(inCgroup(cg, netns, argv), { stdin, stdout: "pipe", stderr: "pipe" });
  children.push(p);
  return p;
}

/** curl of `url` as nobody in the client's cgroup and namespace, `maxTime` seconds at most. */
function curlAsNobody(url: string, maxTime: number) {
  const argv = ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups"];
  return spawnIn(cliCg.dir, ns.cli, [...argv, "curl", "-s", "-m", String(maxTime), url], "ignore");
}

/** Reads a process's stdout into `sink` as it comes. */
function drain(p: { stdout: ReadableStream<Uint8Array> }, sink: (s: string) => void): void {
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of p.stdout) sink(dec.decode(chunk, { stream: true }));
  })();
}

/** A veth between two namespaces, addressed and up. */
async function veth(a: string, aIf: string, aAddr: string, b: string, bIf: string, bAddr: string) {
  await runOk(["ip", "-n", a, "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b]);
  await runOk(["ip", "-n", a, "addr", "add", aAddr, "dev", aIf]);
  await runOk(["ip", "-n", b, "addr", "add", bAddr, "dev", bIf]);
  await runOk(["ip", "-n", a, "link", "set", aIf, "up"]);
  await runOk(["ip", "-n", b, "link", "set", bIf, "up"]);
}

/** fx (10.201.1.2) → router fr (forwarding) → fy (10.201.2.2). */
async function makeRoutedNamespaces(): Promise<void> {
  for (const n of [ns.fx, ns.fr, ns.fy]) {
    await runOk(["ip", "netns", "add", n]);
    ownNetns.push(n);
    await runOk(["ip", "-n", n, "link", "set", "lo", "up"]);
  }
  await veth(ns.fx, "eth0", "10.201.1.2/24", ns.fr, "ra", "10.201.1.1/24");
  await veth(ns.fr, "rb", "10.201.2.1/24", ns.fy, "eth0", "10.201.2.2/24");
  await runOk(["ip", "-n", ns.fx, "route", "add", "default", "via", "10.201.1.1"]);
  await runOk(["ip", "-n", ns.fy, "route", "add", "default", "via", "10.201.2.1"]);
  await runOk(["ip", "netns", "exec", ns.fr, "tee", "/proc/sys/net/ipv4/ip_forward"], {
    stdin: "1\n",
  });
}

/** Every stored flow matching `filters` (GetFlows on the observer). */
async function flows(filters: Parameters<typeof create<typeof FlowFilterSchema>>[1][]) {
  const out: Flow[] = [];
  for await (const r of st().client.getFlows({
    number: 100_000n,
    whitelist: filters.map((f) => create(FlowFilterSchema, f)),
  })) {
    if (r.responseTypes.case === "flow") out.push(r.responseTypes.value);
  }
  return out;
}

const ports = (f: Flow) => {
  const l4 = f.l4?.protocol;
  return l4?.case === "TCP" || l4?.case === "UDP"
    ? { sport: l4.value.sourcePort, dport: l4.value.destinationPort }
    : { sport: 0, dport: 0 };
};

/** `periscope observe` as a process; returns its stdout lines. */
async function observe(args: string[]): Promise<string[]> {
  const p = Bun.spawn(
    [
      "bun",
      "run",
      join(ROOT, "cli/src/main.ts"),
      "observe",
      "--server",
      st().observerAddr,
      ...args,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const timer = setTimeout(() => p.kill("SIGKILL"), 40_000);
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`periscope observe ${args.join(" ")} exited ${code}: ${err}`);
  return out.split("\n").filter((l) => l !== "");
}

/** The enricher's metrics text. */
const scrape = async (): Promise<string> =>
  (await fetch(`http://127.0.0.1:${st().ops["enricher-0"]}/metrics`)).text();

/** The process a flow carries, or a failure naming the flow. */
function processOf(f: Flow): processV1.Process {
  const p = flowProcess(f);
  if (p === undefined) {
    throw new Error(`flow ${f.IP?.source}:${ports(f).sport} → ${f.IP?.destination} has no process`);
  }
  return p;
}

describe.skipIf(OWN_PID_NS)("processes on flows through the running pipeline", () => {
  let cliIp = "";
  let srvIp = "";
  /** Flows of the TCP exchange, read once in the first test and reused by the filter tests. */
  let curlPid = 0;
  let tcpFlows: Flow[] = [];

  beforeAll(async () => {
    cliCg = makeCgroup(`${prefix}cli`);
    makeCgroup(`${prefix}srv`);
    srvCg = makeCgroup(`${prefix}srv/docker-${CONTAINER_ID}.scope`);
    await makeRoutedNamespaces();
    // A connection older than the collector: only the /proc backfill can name its process.
    const oldServer = spawnIn(srvCg.dir, ns.fy, ["nc", "-l", String(OLD_PORT)], "pipe");
    drain(oldServer, (s) => {
      oldServerOut += s;
    });
    await waitFor(
      async () =>
        (await runOk(["ip", "netns", "exec", ns.fy, "ss", "-Htln"])).includes(`:${OLD_PORT}`),
      { timeoutMs: 5000, what: "old server listening" },
    );
    oldClient = spawnIn(cliCg.dir, ns.fx, ["nc", "10.201.2.2", String(OLD_PORT)], "pipe");
    oldClient.stdin.write("before\n");
    oldClient.stdin.flush();
    await waitFor(() => oldServerOut.includes("before"), {
      timeoutMs: 5000,
      what: "old connection established",
    });
    stack = await startStack({
      prefix,
      pods: [{ name: "cli" }, { name: "srv" }],
      nodes: [
        {
          name: NODE,
          interfaces: [`${ns.cli}/eth0`, `${ns.srv}/eth0`, `${ns.fx}/eth0`, `${ns.fr}/ra`].join(
            ",",
          ),
        },
      ],
      env: { collector: { PERISCOPE_PROCESS_EVENTS: "on" } },
    });
    cliIp = st().topology.pod("cli").ipv4;
    srvIp = st().topology.pod("srv").ipv4;
  }, 60_000);

  afterAll(async () => {
    for (const p of children) if (p.exitCode === null) p.kill("SIGKILL");
    await Promise.all(children.map((p) => p.exited));
    await stack?.stop();
    for (const n of ownNetns.reverse()) {
      await deleteNetns(n).catch((err: unknown) => console.error(`could not delete ${n}:`, err));
    }
    for (const dir of cgroups.reverse()) await removeCgroup(dir);
  }, 40_000);

  test("TCP: curl's flows carry curl (pid, binary, args, uid, cgroup), the server's flows the server", async () => {
    const response = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    const server = spawnIn(
      srvCg.dir,
      ns.srv,
      ["nc", "-l", String(HTTP_PORT)],
      new Blob([response]),
    );
    await waitFor(
      async () =>
        (await runOk(["ip", "netns", "exec", ns.srv, "ss", "-Htln"])).includes(`:${HTTP_PORT}`),
      { timeoutMs: 5000, what: "server listening" },
    );
    const url = `http://${srvIp}:${HTTP_PORT}/psct-e2e`;
    const curl = curlAsNobody(url, 5);
    expect(await curl.exited).toBe(0);
    expect(await new Response(curl.stdout).text()).toBe("ok");
    await server.exited;
    curlPid = curl.pid;
    // Both directions, seen in both pods, each with a process.
    await waitFor(
      async () => {
        tcpFlows = await flows([{ sourceIp: [cliIp, srvIp], destinationIp: [cliIp, srvIp] }]).then(
          (fs) =>
            fs.filter(
              (f) =>
                f.l4?.protocol.case === "TCP" &&
                // Trace and L7 flows (kernel drops have a test of their own below).
                f.verdict === Verdict.FORWARDED &&
                (ports(f).dport === HTTP_PORT || ports(f).sport === HTTP_PORT),
            ),
        );
        const toServer = tcpFlows.filter((f) => f.IP?.source === cliIp);
        const toClient = tcpFlows.filter((f) => f.IP?.source === srvIp);
        return (
          toServer.length >= 6 &&
          toClient.length >= 6 &&
          tcpFlows.every((f) => flowProcess(f) !== undefined)
        );
      },
      { timeoutMs: 20_000, what: "TCP flows of both sides with processes" },
    ).catch(() => undefined);
    const toServer = tcpFlows.filter((f) => f.IP?.source === cliIp);
    const toClient = tcpFlows.filter((f) => f.IP?.source === srvIp);
    expect(toServer.length).toBeGreaterThanOrEqual(6); // 3+ packets, seen in both namespaces
    expect(toClient.length).toBeGreaterThanOrEqual(6);
    for (const f of toServer) {
      const p = processOf(f);
      expect(p.tgid).toBe(curl.pid);
      expect(p.pid).toBe(curl.pid);
      expect(p.comm).toBe("curl");
      expect(p.binary).toBe("/usr/bin/curl");
      expect(p.args).toEqual(["curl", "-s", "-m", "5", url]);
      expect(p.uid).toBe(NOBODY);
      expect(p.cgroupId).toBe(cliCg.id);
      expect(p.cgroupPath).toBe(`/${prefix}cli`);
      expect(p.socketSource).toBe("connect");
      expect(p.container).toBeUndefined();
    }
    for (const f of toClient) {
      const p = processOf(f);
      expect(p.tgid).toBe(server.pid);
      expect(p.comm).toBe("nc");
      expect(p.binary).toStartWith("/usr/bin/nc");
      expect(p.args).toEqual(["nc", "-l", String(HTTP_PORT)]);
      expect(p.uid).toBe(0);
      expect(p.cgroupId).toBe(srvCg.id);
      expect(p.socketSource).toBe("accept");
      expect(p.container?.id).toBe(CONTAINER_ID);
      expect(p.container?.runtime).toBe("docker");
    }
  }, 40_000);

  test("a SYN the kernel drops at a closed port carries the process that connected", async () => {
    const curl = curlAsNobody(`http://${srvIp}:${CLOSED_PORT}/`, 3);
    expect(await curl.exited).not.toBe(0); // refused
    let drops: Flow[] = [];
    await waitFor(
      async () => {
        drops = (await flows([{ destinationPort: [String(CLOSED_PORT)] }])).filter(
          (f) => f.verdict === Verdict.DROPPED && f.IP?.source === cliIp,
        );
        return drops.length > 0;
      },
      { timeoutMs: 20_000, what: `the SYN to port ${CLOSED_PORT} dropped` },
    );
    for (const f of drops) {
      expect(f.dropReasonDesc).not.toBe(0);
      const p = processOf(f);
      expect(p.tgid).toBe(curl.pid);
      expect(p.binary).toBe("/usr/bin/curl");
      expect(p.uid).toBe(NOBODY);
      expect(p.cgroupId).toBe(cliCg.id);
      expect(p.socketSource).toBe("connect");
    }
  }, 40_000);

  test("UDP: nc -u client and server, each side its own process", async () => {
    const server = spawnIn(srvCg.dir, ns.srv, ["nc", "-u", "-l", String(UDP_PORT)], "pipe");
    let got = "";
    drain(server, (s) => {
      got += s;
    });
    await waitFor(
      async () =>
        (await runOk(["ip", "netns", "exec", ns.srv, "ss", "-Huln"])).includes(`:${UDP_PORT}`),
      { timeoutMs: 5000, what: "UDP server bound" },
    );
    const client = spawnIn(cliCg.dir, ns.cli, ["nc", "-u", srvIp, String(UDP_PORT)], "pipe");
    client.stdin.write("ping\n");
    client.stdin.flush();
    await waitFor(() => got.includes("ping"), { timeoutMs: 5000, what: "datagram at the server" });
    server.stdin.write("pong\n");
    server.stdin.flush();
    let udpFlows: Flow[] = [];
    await waitFor(
      async () => {
        udpFlows = (
          await flows([{ sourceIp: [cliIp, srvIp], destinationIp: [cliIp, srvIp] }])
        ).filter(
          (f) =>
            f.l4?.protocol.case === "UDP" &&
            (ports(f).dport === UDP_PORT || ports(f).sport === UDP_PORT),
        );
        return (
          udpFlows.filter((f) => f.IP?.source === cliIp).length >= 2 &&
          udpFlows.filter((f) => f.IP?.source === srvIp).length >= 2
        );
      },
      { timeoutMs: 20_000, what: "UDP flows both ways in both namespaces" },
    );
    for (const f of udpFlows) {
      const p = processOf(f);
      const fromClient = f.IP?.source === cliIp;
      expect(p.tgid).toBe(fromClient ? client.pid : server.pid);
      expect(p.args).toEqual(
        fromClient ? ["nc", "-u", srvIp, String(UDP_PORT)] : ["nc", "-u", "-l", String(UDP_PORT)],
      );
      expect(p.uid).toBe(0);
      expect(p.cgroupId).toBe(fromClient ? cliCg.id : srvCg.id);
      expect(p.socketSource).toBe("udp");
    }
    client.kill("SIGKILL");
    server.kill("SIGKILL");
  }, 40_000);

  test("periscope observe --pid, --binary, --uid select exactly the process's flows; compact shows it", async () => {
    expect(tcpFlows.length).toBeGreaterThan(0);
    const all = await flows([{ sourceIp: [cliIp, srvIp], destinationIp: [cliIp, srvIp] }]);
    const uuids = (fs: Flow[]) => fs.map((f) => f.uuid).sort();
    const curlFlows = all.filter((f) => flowProcess(f)?.tgid === curlPid);
    expect(curlFlows.length).toBeGreaterThanOrEqual(6);
    // The CLI itself once (each start costs seconds on a loaded machine): compact, --pid ...
    const compact = await observe(["--pid", String(curlPid), "--ip", cliIp, "--all"]);
    // ... and the filters the CLI builds from its flags, sent through GetFlows.
    const byFlags = async (flags: [string, string][]) => {
      const { whitelist } = buildFilters(
        [...flags, ["ip", cliIp] as [string, string]].map(([name, value]) => ({ name, value })),
      );
      const out: Flow[] = [];
      for await (const r of st().client.getFlows({ number: 100_000n, whitelist })) {
        if (r.responseTypes.case === "flow") out.push(r.responseTypes.value);
      }
      return out;
    };
    expect(uuids(await byFlags([["pid", String(curlPid)]]))).toEqual(uuids(curlFlows));
    // Every curl here ran as nobody: this one and the one refused at the closed port.
    const anyCurl = all.filter((f) => flowProcess(f)?.binary === "/usr/bin/curl");
    expect(anyCurl.length).toBeGreaterThan(curlFlows.length);
    expect(uuids(await byFlags([["binary", "/usr/bin/curl"]]))).toEqual(uuids(anyCurl));
    expect(uuids(await byFlags([["binary", "curl"]]))).toEqual(uuids(anyCurl));
    expect(uuids(await byFlags([["uid", String(NOBODY)]]))).toEqual(uuids(anyCurl));
    // The server's flows (and the UDP test's): uid 0, never curl's.
    const rootFlows = all.filter((f) => flowProcess(f)?.uid === 0);
    expect(rootFlows.length).toBeGreaterThanOrEqual(6);
    expect(uuids(await byFlags([["uid", "0"]]))).toEqual(uuids(rootFlows));
    // The compact lines are curl's flows, each naming it.
    expect(compact.length).toBe(curlFlows.length);
    for (const line of compact) expect(line).toContain(`(curl[${curlPid}]`);
  }, 60_000);

  test("a connection older than the collector is attributed through the /proc backfill", async () => {
    if (!oldClient) throw new Error("no old connection");
    let old: Flow[] = [];
    await waitFor(
      async () => {
        oldClient?.stdin.write("after\n");
        oldClient?.stdin.flush();
        old = (
          await flows([{ sourceIp: ["10.201.1.2"], destinationPort: [String(OLD_PORT)] }])
        ).filter((f) => f.l4?.protocol.case === "TCP" && f.interface?.name === "eth0");
        return old.some((f) => flowProcess(f) !== undefined);
      },
      { timeoutMs: 20_000, what: "flows of the old connection with a process" },
    );
    expect(oldServerOut).toContain("after");
    for (const f of old) {
      const p = processOf(f);
      expect(p.tgid).toBe(oldClient.pid);
      expect(p.args).toEqual(["nc", "10.201.2.2", String(OLD_PORT)]);
      expect(p.cgroupId).toBe(cliCg.id);
      expect(p.socketSource).toBe("backfill");
    }
  }, 40_000);

  test("forwarded traffic: a sender with no socket on this host, routed by a third namespace, stays unattributed", async () => {
    // A raw IP socket (IPPROTO_RAW: no UDP socket, so no socket owner) stands in for another
    // machine; fr routes its datagrams to fy. The collector watches fx and fr's ra.
    const script = [
      "import socket, struct",
      "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)",
      "p = b'fwd'",
      `u = struct.pack('!HHHH', 40000, ${FWD_PORT}, 8 + len(p), 0) + p`,
      "h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(u), 1, 0, 64, 17, 0,",
      "  socket.inet_aton('10.201.1.2'), socket.inet_aton('10.201.2.2'))",
      "for _ in range(3): s.sendto(h + u, ('10.201.2.2', 0))",
    ].join("\n");
    const before = sumMetric(await scrape(), "periscope_enricher_process_join_flows_total", {
      result: "no_owner",
    });
    let fwd: Flow[] = [];
    await waitFor(
      async () => {
        await runOk(["ip", "netns", "exec", ns.fx, "python3", "-c", script]);
        fwd = await flows([{ destinationPort: [String(FWD_PORT)] }]);
        return fwd.some((f) => f.interface?.name === "ra");
      },
      { timeoutMs: 20_000, what: "forwarded datagrams seen on the router" },
    );
    for (const f of fwd) expect(flowProcess(f)).toBeUndefined();
    await waitFor(
      async () =>
        sumMetric(await scrape(), "periscope_enricher_process_join_flows_total", {
          result: "no_owner",
        }) >=
        before + fwd.length,
      { timeoutMs: 5000, what: "unattributed flows counted as no_owner" },
    );
  }, 40_000);

  test("cache and join metrics, promtool clean", async () => {
    const text = await scrape();
    const m = (name: string, labels: Record<string, string> = {}) =>
      sumMetric(text, `periscope_enricher_${name}`, labels);
    expect(m("process_cache_entries")).toBeGreaterThan(10);
    expect(m("process_cache_lookups_total", { result: "hit" })).toBeGreaterThan(0);
    expect(text).toContain('periscope_enricher_process_cache_lookups_total{result="miss"}');
    expect(text).toContain("# TYPE periscope_enricher_process_cache_evictions_total counter");
    expect(m("process_lifecycle_records_total")).toBeGreaterThan(0);
    // The server's cgroup is a Docker scope: one container at least.
    expect(m("container_cache_entries")).toBeGreaterThanOrEqual(1);
    // connect + accept (TCP), two UDP sockets, the backfilled connection.
    expect(m("socket_owner_records_total")).toBeGreaterThanOrEqual(5);
    expect(m("socket_owners")).toBeGreaterThanOrEqual(5);
    expect(m("process_join_flows_total", { result: "joined" })).toBeGreaterThanOrEqual(
      tcpFlows.length,
    );
    expect(m("process_join_flows_total", { result: "no_owner" })).toBeGreaterThan(0);
    for (const r of ["owner_expired", "process_unknown"]) {
      expect(text).toContain(`periscope_enricher_process_join_flows_total{result="${r}"}`);
    }
    // The families above (the runtime's default nodejs_* gauges carry a _total suffix promtool flags).
    const ours = text
      .split("\n")
      .filter((l) =>
        /^(# (HELP|TYPE) )?periscope_enricher_(process_|container_cache_|socket_owner)/.test(l),
      );
    expect(ours.length).toBeGreaterThan(30);
    expect(await promtoolCheckMetrics(`${ours.join("\n")}\n`)).toEqual({ code: 0, output: "" });
  }, 20_000);
});
