/**
 * Discovery under namespace churn: 200 namespaces, each with a veth into a hub namespace,
 * are created while a real collector (child process, real nats-server) watches
 * `<prefix>p*​/eth0`, with pings running into a few of them. Every device must be attached
 * soon after it appears and forgotten (with its registry entry) as soon as its namespace
 * is deleted; a collector killed with SIGKILL and started again must take over its own tc
 * filters (one per hook, new program ids) instead of adding a second pair.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import {
  type Bus,
  connectBus,
  type InterfaceRegistry,
  openInterfaceRegistry,
  sanitizeToken,
} from "@periscope/bus";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/devstack";
import { createLogger } from "@periscope/telemetry";
import { tcFilterProgIds } from "@periscope/testing";
import {
  ChurnTopology,
  CollectorProcess,
  filterCounts,
  pairAddrs,
  percentile,
  podNetns,
} from "./churn.ts";
import { ROOT } from "./harness.ts";

const PODS = 200;
/** Pods with addresses and a ping running from the hub while the others come and go. */
const PINGED = [0, 1, 2, 3];
/** Generous per-device bound; the figures printed are what matters. */
const BOUND_MS = 5000;
const PREFIX = "psct-churn-";
const NODE = "psct-churn-node";
const canRun = process.getuid?.() === 0 && existsSync(`${ROOT}/bpf/build/trace.bpf.o`);

let nats: LocalNats | undefined;
let bus: Bus | undefined;
let registry: InterfaceRegistry | undefined;
let topo: ChurnTopology | undefined;
let collector: CollectorProcess | undefined;
const pings: ReturnType<typeof Bun.spawn>[] = [];
let rawMessages = 0;

const deviceName = (i: number): string => `${podNetns(PREFIX, i)}/eth0`;
const all = Array.from({ length: PODS }, (_, i) => i);

function startCollector(): CollectorProcess {
  if (nats === undefined) throw new Error("nats-server not started");
  return new CollectorProcess({
    natsUrl: nats.url,
    node: NODE,
    interfaces: `${PREFIX}p*/eth0`,
  });
}

async function registeredCount(): Promise<number> {
  return (await registry?.keysOfNode(NODE))?.length ?? -1;
}

function summary(what: string, xs: number[]): string {
  const f = (n: number): string => n.toFixed(1);
  return `${what}: n=${xs.length} p50=${f(percentile(xs, 50))} ms p99=${f(percentile(xs, 99))} ms max=${f(Math.max(...xs))} ms`;
}

beforeAll(async () => {
  if (!canRun) return;
  topo = await ChurnTopology.create(PREFIX);
  nats = await startLocalNats({});
  bus = await connectBus({
    url: nats.url,
    name: "psct-churn",
    log: createLogger("test", "silent"),
  });
  registry = await openInterfaceRegistry(bus);
  bus.nc.subscribe(`periscope.raw.${sanitizeToken(NODE)}.>`, {
    callback: () => {
      rawMessages++;
    },
  });
  collector = startCollector();
  await collector.ready();
}, 60_000);

afterAll(async () => {
  for (const p of pings) p.kill("SIGKILL");
  await collector?.stop();
  await topo?.destroy();
  await registry?.close();
  await bus?.close();
  await nats?.stop();
}, 60_000);

test.skipIf(!canRun)(
  "netns churn - 200 namespaces attached as they appear, kept across a kill -9 restart, forgotten as they go",
  async () => {
    if (topo === undefined || collector === undefined) throw new Error("setup failed");
    const t = topo;

    // Appear: one namespace and veth after the other, pings into the first few.
    const createdAt = new Map<number, number>();
    for (const i of all) {
      createdAt.set(i, await t.addPod(i, { addresses: PINGED.includes(i) }));
      if (PINGED.includes(i)) {
        pings.push(
          Bun.spawn(["ip", "netns", "exec", t.hub, "ping", "-q", "-i", "0.1", pairAddrs(i).pod], {
            stdout: "ignore",
            stderr: "ignore",
          }),
        );
      }
    }
    const c1 = collector;
    await waitFor(() => all.every((i) => c1.attachedAt.has(deviceName(i))), {
      timeoutMs: BOUND_MS,
      what: `all ${PODS} devices attached`,
    });
    const attachMs = all.map(
      (i) => (c1.attachedAt.get(deviceName(i)) ?? 0) - (createdAt.get(i) ?? 0),
    );
    console.log(summary("attach latency from `ip link add`", attachMs));
    for (const ms of attachMs) expect(ms).toBeLessThan(BOUND_MS);
    expect(c1.attached().size).toBe(PODS);
    await waitFor(async () => (await registeredCount()) === PODS, {
      what: `${PODS} registry entries`,
    });
    const rawBefore = rawMessages;
    await waitFor(() => rawMessages > rawBefore, { what: "raw frames from the pinged devices" });
    const oldIds = await tcFilterProgIds(podNetns(PREFIX, 0), "eth0", "ingress");
    expect(oldIds).toHaveLength(1);

    // Restart without cleanup: the filters stay, the new run must replace them in place.
    const killedAt = performance.now();
    await c1.kill9();
    const c2 = startCollector();
    collector = c2;
    await c2.ready();
    await waitFor(() => all.every((i) => c2.attachedAt.has(deviceName(i))), {
      timeoutMs: 20_000,
      what: `all ${PODS} devices attached again after the restart`,
    });
    const restartMs = Math.max(...all.map((i) => c2.attachedAt.get(deviceName(i)) ?? 0)) - killedAt;
    console.log(`kill -9 to all ${PODS} re-attached: ${restartMs.toFixed(0)} ms`);
    const counts = await Promise.all(all.map((i) => filterCounts(podNetns(PREFIX, i))));
    expect(counts.filter((c) => c.ingress !== 1 || c.egress !== 1)).toEqual([]);
    const newIds = await tcFilterProgIds(podNetns(PREFIX, 0), "eth0", "ingress");
    expect(newIds).toHaveLength(1);
    expect(newIds[0]).not.toBe(oldIds[0]);
    const rawAfter = rawMessages;
    await waitFor(() => rawMessages > rawAfter, { what: "raw frames after the restart" });
    await waitFor(async () => (await registeredCount()) === PODS, {
      what: `${PODS} registry entries after the restart`,
    });

    // Go: every namespace deleted, its device forgotten at once.
    for (const p of pings.splice(0)) p.kill("SIGKILL");
    const deletedAt = new Map<number, number>();
    for (const i of all) deletedAt.set(i, await t.deletePod(i));
    await waitFor(() => c2.attached().size === 0, {
      timeoutMs: BOUND_MS,
      what: "every device forgotten",
    });
    const detachMs = all.map(
      (i) =>
        (c2.detachedAt.get(deviceName(i)) ?? Number.POSITIVE_INFINITY) - (deletedAt.get(i) ?? 0),
    );
    console.log(summary("detach latency from `ip netns delete`", detachMs));
    for (const ms of detachMs) expect(ms).toBeLessThan(BOUND_MS);
    await waitFor(async () => (await registeredCount()) === 0, { what: "registry emptied" });
    expect(await t.leftovers()).toEqual([t.hub]);
  },
  90_000,
);
