/**
 * compose.yaml for real: the images build, `up` brings every service up healthy, the
 * collector (host network, BPF) watches this file's own network namespaces, their flows
 * come out of the observer's published port to a plain gRPC client, enrichers scale up and
 * down, a restarted observer serves flows again, and `down -v` leaves nothing behind.
 * Base images come from the local Debian root (scripts/lib/docker-images.sh), as Docker Hub
 * may be out of reach. Traffic stays between the namespaces this file creates.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  createDemoTopology,
  type DemoTraffic,
  demoTraffic,
  freePort,
  type Topology,
  waitFor,
} from "@periscope/devstack";
import { type Flow, FlowFilterSchema, Observer } from "@periscope/proto";
import { ComposeProject, composeCommand, staleProjects } from "./docker/compose.ts";
import { alive, DOCKER, type Engine, ensureEngine, execOk } from "./docker/engine.ts";
import { ROOT, testPrefix } from "./harness.ts";

const SKIP = process.env.PERISCOPE_TEST_IN_MINIMAL_ROOT === "1";
if (SKIP) {
  console.log(
    "SKIP tests/docker-compose.test.ts: PERISCOPE_TEST_IN_MINIMAL_ROOT=1, and no Docker engine runs inside the minimal-root chroot",
  );
}

const PROJECT_PREFIX = "psct-compose-";
const HTTP_PORT = 8080;
const UDP_PORT = 9000;
/** Default replicas from compose.yaml; the scale test goes to 3 and back. */
const SERVICES = { nats: 1, collector: 1, enricher: 2, observer: 1, recorder: 1 };

let engine: Engine | undefined;
let project: ComposeProject | undefined;
let topology: Topology | undefined;
let traffic: DemoTraffic | undefined;
let observerPort = 0;

const compose = (): ComposeProject => {
  if (!project) throw new Error("compose project not set up");
  return project;
};
const topo = (): Topology => {
  if (!topology) throw new Error("topology not set up");
  return topology;
};

/** Waits until the project runs exactly `want` containers per service, all healthy. */
async function waitHealthy(want: Record<string, number>, timeoutMs = 120_000): Promise<void> {
  let last = "";
  try {
    await waitFor(
      async () => {
        const cs = await compose().containers();
        last = cs.map((c) => `${c.name}: ${c.status}/${c.health}`).join(", ");
        const up = cs.filter((c) => c.status === "running" && c.health === "healthy");
        return (
          cs.length === up.length &&
          Object.entries(want).every(([s, n]) => up.filter((c) => c.service === s).length === n)
        );
      },
      { timeoutMs, intervalMs: 500, what: `services healthy (${JSON.stringify(want)})` },
    );
  } catch (err) {
    const logs = await compose().run(["logs", "--no-color", "--tail", "20"]);
    throw new Error(`not healthy: ${last}\n${logs.stdout}`, { cause: err });
  }
}

/** Flows the frontend pod sent since `sinceMs`, read through the observer's published port. */
async function flowsSince(sinceMs: number): Promise<Flow[]> {
  const client = createClient(
    Observer,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${observerPort}` }),
  );
  const out: Flow[] = [];
  const source = topo().pod("frontend").ipv4;
  for await (const r of client.getFlows({
    number: 10_000n,
    since: timestampFromMs(sinceMs),
    whitelist: [create(FlowFilterSchema, { sourceIp: [source] })],
  })) {
    if (r.responseTypes.case === "flow") out.push(r.responseTypes.value);
  }
  return out;
}

/** Waits until TCP, UDP and ICMPv4 flows sent after `sinceMs` all come out of the observer. */
async function seeAllProtocols(sinceMs: number, what: string): Promise<void> {
  let seen = "";
  await waitFor(
    async () => {
      const fs = await flowsSince(sinceMs);
      const tcp = fs.some(
        (f) => f.l4?.protocol.case === "TCP" && f.l4.protocol.value.destinationPort === HTTP_PORT,
      );
      const udp = fs.some(
        (f) => f.l4?.protocol.case === "UDP" && f.l4.protocol.value.destinationPort === UDP_PORT,
      );
      const icmp = fs.some((f) => f.l4?.protocol.case === "ICMPv4");
      seen = `${fs.length} flows: tcp ${tcp}, udp ${udp}, icmp ${icmp}`;
      return tcp && udp && icmp;
    },
    { timeoutMs: 60_000, intervalMs: 500, what: `${what} (${seen})` },
  );
}

/** Ids of the BPF programs tc runs on each pod's eth0 (ingress and egress). */
async function podPrograms(): Promise<number[]> {
  const ids: number[] = [];
  for (const pod of topo().pods) {
    for (const dir of ["ingress", "egress"]) {
      const r = await topo().exec(pod, ["tc", "filter", "show", "dev", "eth0", dir]);
      for (const m of r.stdout.matchAll(/ id (\d+)/g)) ids.push(Number(m[1]));
    }
  }
  return ids;
}

/**
 * Removes what an earlier, killed run of this file left in the engine: projects named
 * `<prefix><pid>-…` whose test process is gone (a run still going keeps its project).
 */
async function removeStaleProjects(cli: string[]): Promise<void> {
  for (const name of await staleProjects(PROJECT_PREFIX)) {
    const pid = Number(/^(\d+)-/.exec(name.slice(PROJECT_PREFIX.length))?.[1]);
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) continue;
    const stale = new ComposeProject(name, cli, {});
    await stale.run(["down", "-v", "--remove-orphans", "-t", "5"]);
    await stale.removeLeftovers();
  }
}

describe.skipIf(SKIP)("compose", () => {
  beforeAll(async () => {
    engine = await ensureEngine();
    const cli = await composeCommand();
    await removeStaleProjects(cli);
    const natsImage = /^\s*image:\s*(nats:\S+)\s*$/m.exec(
      readFileSync(join(ROOT, "compose.yaml"), "utf8"),
    )?.[1];
    if (!natsImage) throw new Error("compose.yaml names no nats image");
    const made = await execOk(["bash", join(ROOT, "scripts/lib/docker-images.sh"), natsImage], {
      env: { DOCKER },
      timeoutMs: 900_000,
    });
    if (made.trim()) console.log(made.trim());

    const prefix = testPrefix();
    topology = await createDemoTopology({ prefix });
    observerPort = await freePort();
    const subnet = `172.31.${241 + Math.floor(Math.random() * 14)}.0/24`;
    project = new ComposeProject(`${PROJECT_PREFIX}${process.pid}-${prefix.slice(5, -1)}`, cli, {
      PERISCOPE_INTERFACES: `${prefix}*/eth0`,
      PERISCOPE_OBSERVER_PORT: String(observerPort),
      PERISCOPE_NATS_PORT: String(await freePort()),
      PERISCOPE_COLLECTOR_OPS_PORT: String(await freePort()),
      PERISCOPE_SUBNET: subnet,
    });
  }, 900_000);

  afterAll(async () => {
    await traffic?.stop().catch((err: unknown) => console.error("traffic stop:", err));
    if (project) {
      const down = await project.run(["down", "-v", "--remove-orphans", "-t", "10"]);
      if (down.code !== 0) console.error(`compose down failed:\n${down.stderr}`);
      await project.removeLeftovers();
    }
    await topology?.destroy().catch((err: unknown) => console.error("topology destroy:", err));
    await engine?.stop();
  }, 180_000);

  test("compose - the images build", async () => {
    const t0 = performance.now();
    await compose().ok(["build"], 2_400_000);
    console.log(`compose build: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const size = await execOk([DOCKER, "image", "inspect", "-f", "{{.Size}}", "periscope:dev"]);
    console.log(`periscope:dev image: ${(Number(size) / 1e6).toFixed(0)} MB`);
  }, 2_400_000);

  test("compose - every service comes up healthy", async () => {
    await compose().ok(["up", "-d", "--no-build"], 300_000);
    await waitHealthy(SERVICES);
    // Published on loopback only, at the port the test asked for.
    const published = (await compose().ok(["port", "observer", "4245"])).trim();
    expect(published).toBe(`127.0.0.1:${observerPort}`);
  }, 300_000);

  test("compose - flows between the test namespaces come out of the published observer port", async () => {
    const since = Date.now();
    traffic = await demoTraffic(topo(), { httpPort: HTTP_PORT, udpPort: UDP_PORT });
    await seeAllProtocols(since, "flows through compose");
    // The collector attached to both hooks of every pod's eth0, and to nothing else of ours.
    expect(await podPrograms()).toHaveLength(2 * topo().pods.length);
  }, 120_000);

  test("compose - enrichers scale to 3 and back to 2 while flows keep coming", async () => {
    const scale = (n: number) =>
      compose().ok(
        ["up", "-d", "--no-build", "--no-recreate", "--scale", `enricher=${n}`],
        300_000,
      );
    await scale(3);
    await waitHealthy({ ...SERVICES, enricher: 3 });
    await seeAllProtocols(Date.now(), "flows with 3 enrichers");
    await scale(2);
    await waitHealthy(SERVICES);
    await seeAllProtocols(Date.now(), "flows with 2 enrichers again");
  }, 300_000);

  test("compose - a restarted observer serves new flows again", async () => {
    const before = (await compose().containers()).find((c) => c.service === "observer");
    await compose().ok(["restart", "-t", "10", "observer"]);
    const after = (await compose().containers()).find((c) => c.service === "observer");
    expect(after?.id).toBe(before?.id ?? "");
    expect(after?.startedAt).not.toBe(before?.startedAt ?? "");
    await waitHealthy(SERVICES);
    await seeAllProtocols(Date.now(), "flows after the observer restarted");
  }, 180_000);

  test("compose - down -v leaves no container, network, volume, tc filter or BPF program", async () => {
    const programs = await podPrograms();
    expect(programs.length).toBeGreaterThan(0);
    await compose().ok(["down", "-v", "--remove-orphans", "-t", "20"], 180_000);
    expect(await compose().leftovers()).toEqual([]);
    expect(await podPrograms()).toEqual([]);
    await waitFor(
      async () => {
        const listed = JSON.parse(await execOk(["bpftool", "-j", "prog", "show"])) as {
          id: number;
        }[];
        const live = new Set(listed.map((p) => p.id));
        return programs.every((id) => !live.has(id));
      },
      { timeoutMs: 10_000, what: "the collector's BPF programs are freed" },
    );
  }, 240_000);
});
