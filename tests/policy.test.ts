/**
 * L3/L4 policy end to end: policies applied with the real CLI into the real NATS KV
 * bucket, enforced by the collector's tc programs in real namespaces, reported as
 * drop and policy-verdict flows by the observer. Traffic stays inside the pods this
 * file creates.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openPolicyStore } from "@periscope/bus";
import type { PodProcess } from "@periscope/devstack";
import { DropReason, type Flow, TrafficDirection, Verdict } from "@periscope/proto";
import { waitFor } from "@periscope/testing";
import { ROOT, type Stack, startStack, testPrefix } from "./harness.ts";

const NODE = "policy-node";
const COLLECTOR = `collector-${NODE}`;
const REVISION = "periscope_collector_policy_revision";
const HTTP_PORT = 8080;
const POLICY_VERDICT = 5;
const MATCH_NONE = 0;
const MATCH_L3_L4 = 2;

let stack: Stack;
let server: PodProcess | undefined;
let dir: string;
let client: string;
let web: string;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI as a process against the test's NATS. */
async function cli(...args: string[]): Promise<CliResult> {
  const proc = Bun.spawn(["bun", "run", join(ROOT, "cli/src/main.ts"), ...args], {
    env: { ...process.env, PERISCOPE_NATS_URL: stack.natsUrl },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

function policyFile(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  return path;
}

async function revision(): Promise<number> {
  return stack.metric(COLLECTOR, REVISION);
}

/** When the last {@link apply} started the CLI, ms since the epoch. */
let applyStartedAt = 0;

/**
 * Applies a policy file with the CLI and waits until the collector installed a new rule
 * set. Returns when the CLI had stored the policy (its exit), ms since the epoch.
 */
async function apply(path: string): Promise<number> {
  const before = await revision();
  applyStartedAt = Date.now();
  const r = await cli("policy", "apply", "-f", path);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const appliedAt = Date.now();
  await waitFor(async () => (await revision()) > before, {
    timeoutMs: 5000,
    intervalMs: 20,
    what: "collector installs the new policy",
  });
  return appliedAt;
}

async function remove(name: string): Promise<void> {
  const before = await revision();
  const r = await cli("policy", "delete", name);
  expect(r.code).toBe(0);
  await waitFor(async () => (await revision()) > before, {
    timeoutMs: 5000,
    intervalMs: 20,
    what: `collector drops policy ${name}`,
  });
}

async function flows(): Promise<Flow[]> {
  const out: Flow[] = [];
  for await (const r of stack.client.getFlows({ number: 20_000n })) {
    if (r.responseTypes.case === "flow") out.push(r.responseTypes.value);
  }
  return out;
}

async function eventually<T>(pick: (fs: Flow[]) => T | undefined, what: string): Promise<T> {
  let found: T | undefined;
  await waitFor(
    async () => {
      found = pick(await flows());
      return found !== undefined;
    },
    { timeoutMs: 15_000, intervalMs: 200, what },
  );
  return found as T;
}

const STREAM_PORT = 9000;
const STREAM_COUNT = 400;
const ENOBUFS = 105;
/** Prints "ready", then "<seq> <unix time>" for every datagram it receives. */
const RECEIVER = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready")
while True:
    data, _ = s.recvfrom(64)
    print(data.decode(), "%.6f" % time.time())
`;
/**
 * Sends numbered datagrams every 10 ms and prints "<seq> <unix time> ok|err<errno>".
 * IP_RECVERR makes a datagram dropped on the way out (tc egress) fail with ENOBUFS.
 */
const SENDER = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 11, 1)
s.bind(("0.0.0.0", 45000))
dst = (sys.argv[1], int(sys.argv[2]))
for i in range(int(sys.argv[3])):
    try:
        s.sendto(str(i).encode(), dst)
        r = "ok"
    except OSError as e:
        r = "err%d" % e.errno
    print(i, "%.6f" % time.time(), r)
    time.sleep(0.01)
`;

/** Collects a spawned process's stdout lines as they come. */
function lineReader(proc: PodProcess): { lines: string[]; done: Promise<void> } {
  const lines: string[] = [];
  const done = (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of proc.stdout) {
      rest += decoder.decode(chunk, { stream: true });
      const parts = rest.split("\n");
      rest = parts.pop() ?? "";
      lines.push(...parts);
    }
    if (rest) lines.push(rest);
  })();
  return { lines, done };
}

const udpOf = (f: Flow) => (f.l4?.protocol.case === "UDP" ? f.l4.protocol.value : undefined);
const tcpOf = (f: Flow) => (f.l4?.protocol.case === "TCP" ? f.l4.protocol.value : undefined);
const icmpOf = (f: Flow) => (f.l4?.protocol.case === "ICMPv4" ? f.l4.protocol.value : undefined);
const isVerdict = (f: Flow) => f.eventType?.type === POLICY_VERDICT;

async function curl(localPort: number): Promise<CliResult> {
  return stack.topology.exec("client", [
    "curl",
    "-sS",
    "--max-time",
    "2",
    "--local-port",
    String(localPort),
    `http://${web}:${HTTP_PORT}/`,
  ]);
}

function httpPolicy(name: string, mode: string, action: string, subject: string): string {
  return `name: ${name}
mode: ${mode}
rules:
  - id: ${name === "web-audit" ? 21 : 11}
    name: ${action}-http
    action: ${action}
    direction: ingress
    ${subject}
    peers: ["${client}/32"]
    protocol: tcp
    ports: "${HTTP_PORT}"
`;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "periscope-policy-"));
  stack = await startStack({
    prefix: testPrefix(),
    pods: [{ name: "client" }, { name: "web" }],
    nodes: [{ name: NODE, pods: ["client", "web"] }],
  });
  client = stack.topology.pod("client").ipv4;
  web = stack.topology.pod("web").ipv4;
  server = stack.topology.spawn("web", [
    "bun",
    "-e",
    `Bun.serve({ hostname: "0.0.0.0", port: ${HTTP_PORT}, fetch: () => new Response("ok") }); console.log("listening");`,
  ]);
  const reader = server.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!new TextDecoder().decode(value).includes("listening")) {
    throw new Error("web server did not start");
  }
  expect((await curl(42000)).stdout).toBe("ok");
}, 90_000);

afterAll(async () => {
  server?.kill();
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("policy", () => {
  test("policy - deny: the connection fails, DROPPED flow with POLICY_DENIED and a policy verdict", async () => {
    await apply(
      policyFile("deny.yaml", httpPolicy("web-deny", "enforce", "deny", "endpoint: app=web")),
    );
    const r = await curl(42001);
    expect(r.code).not.toBe(0);
    const drops = await eventually((fs) => {
      const d = fs.filter(
        (f) =>
          f.verdict === Verdict.DROPPED &&
          f.eventType?.type === 1 &&
          tcpOf(f)?.sourcePort === 42001 &&
          tcpOf(f)?.destinationPort === HTTP_PORT,
      );
      return d.length >= 2 ? d : undefined; // the SYN and its retransmission
    }, "policy drops of the denied SYN");
    expect(drops.every((f) => f.dropReasonDesc === DropReason.POLICY_DENIED)).toBe(true);
    expect(drops[0]?.IP?.source).toBe(client);
    const verdict = await eventually(
      (fs) => fs.find((f) => isVerdict(f) && tcpOf(f)?.sourcePort === 42001),
      "policy verdict of the denied connection",
    );
    expect(verdict.verdict).toBe(Verdict.DROPPED);
    expect(verdict.trafficDirection).toBe(TrafficDirection.INGRESS);
    expect(verdict.policyMatchType).toBe(MATCH_L3_L4);
    expect(verdict.destination?.podName).toBe("web");
    expect(verdict.ingressDeniedBy.map((p) => [p.name, p.labels])).toEqual([
      ["web-deny", ["rule=deny-http", "rule-id=11"]],
    ]);
    await remove("web-deny");
    expect((await curl(42002)).stdout).toBe("ok");
  }, 60_000);

  test("policy - audit: traffic passes and is reported as AUDIT (interface subject)", async () => {
    const iface = `interface: "${stack.topology.pod("web").netns}/eth0"`;
    await apply(policyFile("audit.yaml", httpPolicy("web-audit", "audit", "deny", iface)));
    expect((await curl(42003)).stdout).toBe("ok");
    const verdict = await eventually(
      (fs) => fs.find((f) => isVerdict(f) && tcpOf(f)?.sourcePort === 42003),
      "audit verdict",
    );
    expect(verdict.verdict).toBe(Verdict.AUDIT);
    expect(verdict.policyMatchType).toBe(MATCH_L3_L4);
    const all = await flows();
    expect(all.some((f) => f.verdict === Verdict.DROPPED && tcpOf(f)?.sourcePort === 42003)).toBe(
      false,
    );
    await remove("web-audit");
  }, 60_000);

  test("policy - allow: the allowed port passes, the rest of that direction is denied", async () => {
    await apply(
      policyFile("allow.yaml", httpPolicy("web-allow", "enforce", "allow", "endpoint: app=web")),
    );
    expect((await curl(42004)).stdout).toBe("ok");
    const ping = await stack.topology.exec("client", ["ping", "-c", "1", "-W", "1", web]);
    expect(ping.code).not.toBe(0);
    const allowed = await eventually(
      (fs) => fs.find((f) => isVerdict(f) && tcpOf(f)?.sourcePort === 42004),
      "allow verdict",
    );
    expect(allowed.verdict).toBe(Verdict.FORWARDED);
    expect(allowed.policyMatchType).toBe(MATCH_L3_L4);
    expect(allowed.ingressAllowedBy.map((p) => p.name)).toEqual(["web-allow"]);
    const denied = await eventually(
      (fs) => fs.find((f) => isVerdict(f) && icmpOf(f)?.type === 8 && f.IP?.destination === web),
      "default-deny verdict for the ping",
    );
    expect(denied.verdict).toBe(Verdict.DROPPED);
    expect(denied.policyMatchType).toBe(MATCH_NONE);
    expect(denied.ingressDeniedBy).toEqual([]); // the default decision has no rule
    await remove("web-allow");
  }, 60_000);

  test("policy - live change under a UDP stream: forwarded, then denied within 1 s, every datagram accounted for", async () => {
    const udpRule = (id: number, action: string) => `name: live
rules:
  - id: ${id}
    name: stream-${action}
    action: ${action}
    direction: ingress
    endpoint: app=web
    peers: ["${client}/32"]
    protocol: udp
    ports: "${STREAM_PORT}"
`;
    await apply(policyFile("live1.yaml", udpRule(31, "allow")));
    const receiver = stack.topology.spawn("web", [
      "python3",
      "-u",
      "-c",
      RECEIVER,
      String(STREAM_PORT),
    ]);
    const received = lineReader(receiver);
    await waitFor(() => received.lines.includes("ready"), { timeoutMs: 10_000, what: "receiver" });
    const sender = stack.topology.spawn("client", [
      "python3",
      "-u",
      "-c",
      SENDER,
      web,
      String(STREAM_PORT),
      String(STREAM_COUNT),
    ]);
    const sent = lineReader(sender);
    const results = () => sent.lines.map((l) => l.split(" ")).filter((p) => p.length === 3);
    const denied = () => results().filter((p) => p[2] !== "ok");
    await waitFor(() => results().length >= 50, { timeoutMs: 10_000, what: "datagrams sent" });
    const deniedAt = await apply(policyFile("live2.yaml", udpRule(32, "deny")));
    const cliStartedAt = applyStartedAt;
    await waitFor(() => denied().length >= 50, { timeoutMs: 10_000, what: "datagrams denied" });
    // Deny to another deny rule: a datagram in a window with no policy would get through.
    const switchedAt = await apply(policyFile("live3.yaml", udpRule(33, "deny")));
    await sender.exited;
    await sent.done;

    const all = results();
    const ok = all.filter((p) => p[2] === "ok");
    const refused = all.filter((p) => p[2] !== "ok");
    await waitFor(() => received.lines.length - 1 >= ok.length, {
      timeoutMs: 5000,
      what: "every forwarded datagram received",
    });
    receiver.kill();
    await received.done;
    const arrived = received.lines.filter((l) => l !== "ready").map((l) => Number(l.split(" ")[0]));
    const lastOkMs = Math.max(...ok.map((p) => Number(p[1]) * 1000));
    const switchOk = ok.filter((p) => Number(p[1]) * 1000 > switchedAt);
    const firstRefusedMs = Math.min(...refused.map((p) => Number(p[1]) * 1000));
    console.log(
      `live change: ${all.length} datagrams, ${ok.length} forwarded (${arrived.length} arrived), ${refused.length} refused by the policy; last forwarded ${(lastOkMs - deniedAt).toFixed(0)} ms after the CLI stored the deny, first refused ${(firstRefusedMs - cliStartedAt).toFixed(0)} ms after the CLI started; deny->deny switch ${(switchedAt - deniedAt).toFixed(0)} ms later, ${switchOk.length} forwarded after it`,
    );
    expect(all.length).toBe(STREAM_COUNT);
    expect(ok.length).toBeGreaterThanOrEqual(50);
    expect(refused.length).toBeGreaterThanOrEqual(100);
    // Forwarded datagrams are exactly a prefix of the stream and all of them arrived.
    expect(ok.map((p) => Number(p[0]))).toEqual(Array.from({ length: ok.length }, (_, i) => i));
    expect(arrived.sort((a, b) => a - b)).toEqual(ok.map((p) => Number(p[0])));
    expect(refused.every((p) => p[2] === `err${ENOBUFS}`)).toBe(true);
    expect(lastOkMs - deniedAt).toBeLessThan(1000);
    expect(switchOk.length).toBe(0);
    // Every refused datagram was dropped by the policy and reported as such.
    const drops = await eventually((fs) => {
      const d = fs.filter(
        (f) =>
          f.verdict === Verdict.DROPPED &&
          f.eventType?.type === 1 &&
          f.dropReasonDesc === DropReason.POLICY_DENIED &&
          f.extDropReasonDesc === "" && // the tc program's record, not kfree_skb's
          udpOf(f)?.destinationPort === STREAM_PORT,
      );
      return d.length >= refused.length ? d : undefined;
    }, "a policy drop for every refused datagram");
    expect(drops.length).toBe(refused.length);
    await remove("live");
  }, 60_000);

  test("policy - malformed policies are refused by the CLI and by the collector, naming rule and field", async () => {
    await apply(
      policyFile("keep.yaml", httpPolicy("web-keep", "enforce", "deny", "endpoint: app=web")),
    );
    const bad = policyFile(
      "bad.json",
      JSON.stringify({
        name: "web-keep",
        rules: [
          {
            id: 11,
            name: "deny-http",
            action: "deny",
            direction: "ingress",
            endpoint: "app=web",
            ports: "80-70",
          },
        ],
      }),
    );
    const r = await cli("policy", "apply", "-f", bad);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'policy "web-keep", rule 1 ("deny-http"), field "ports": range "80-70" ends before it starts',
    );
    // Written past the CLI: the collector refuses it and keeps the old version in force.
    const refusedBefore = await stack.metric(
      COLLECTOR,
      "periscope_collector_policy_rejected_total",
      {
        reason: "invalid",
      },
    );
    const store = await openPolicyStore(stack.bus);
    await store.put("web-keep", {
      name: "web-keep",
      rules: [{ id: 11, name: "x", action: "drop" }],
    });
    await waitFor(
      async () =>
        (await stack.metric(COLLECTOR, "periscope_collector_policy_rejected_total", {
          reason: "invalid",
        })) > refusedBefore,
      { timeoutMs: 5000, intervalMs: 20, what: "collector refuses the malformed policy" },
    );
    const log = stack.sup.get(COLLECTOR)?.lines().join("\n") ?? "";
    expect(log).toContain('policy \\"web-keep\\", rule 1 (\\"x\\"), field \\"action\\"');
    expect((await curl(42005)).code).not.toBe(0); // the last good version still denies
    await remove("web-keep");
    expect((await curl(42006)).stdout).toBe("ok");
  }, 60_000);

  test("policy - list and delete", async () => {
    const path = policyFile(
      "two.yaml",
      `${httpPolicy("a-one", "audit", "deny", "endpoint: app=web")}---\n${httpPolicy("b-two", "enforce", "allow", "endpoint: app=web").replace("id: 11", "id: 12")}`,
    );
    await apply(path);
    const table = await cli("policy", "list");
    expect(table.code).toBe(0);
    const rows = table.stdout.trim().split("\n");
    expect(rows[0]).toMatch(/^NAME\s+MODE\s+RULES\s+REVISION$/);
    expect(rows.slice(1).map((l) => l.split(/\s+/).slice(0, 2))).toEqual([
      ["a-one", "audit"],
      ["b-two", "enforce"],
    ]);
    const json = JSON.parse((await cli("policy", "list", "-o", "json")).stdout) as {
      name: string;
      rules: { id: number }[];
    }[];
    expect(json.map((p) => [p.name, p.rules[0]?.id])).toEqual([
      ["a-one", 11],
      ["b-two", 12],
    ]);
    await remove("a-one");
    await remove("b-two");
    expect((await cli("policy", "list", "-o", "json")).stdout.trim()).toBe("[]");
    const missing = await cli("policy", "delete", "a-one");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no policy named "a-one"');
  }, 60_000);
});
