import { describe, expect, test } from "bun:test";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { type PresenceBeat, PresenceTable } from "@periscope/bus";
import { ChangeNotificationType, NodeState, Observer, Peer } from "@periscope/proto";
import { listNodes } from "./nodes.ts";
import type { PresenceSource } from "./presence.ts";
import { observerRoutes } from "./routes.ts";
import { FlowStore, NAMESPACE_TTL_MS } from "./store.ts";
import { testFlowEvent } from "./testing.ts";

const T0 = Date.UTC(2024, 4, 1, 10, 0, 0);

function beat(node: string, state: PresenceBeat["state"], extra: Partial<PresenceBeat> = {}) {
  return {
    service: "collector",
    node,
    instance: `${node}-1`,
    host: `host-${node}`,
    pid: 1,
    state,
    startedMs: T0 - 10_000,
    sentMs: T0,
    intervalMs: 1000,
    version: "periscope 1.2.3",
    ...extra,
  } satisfies PresenceBeat;
}

/** A presence view over a real table, read at the current clock. */
function presenceOf(table: PresenceTable): PresenceSource {
  return { report: () => table.report(), live: () => table.live() };
}

describe("FlowStore per-node and namespace bookkeeping", () => {
  test("num_flows counts a node's flows still in the ring, minus overwritten ones", () => {
    const store = new FlowStore({ maxFlows: 4 });
    for (let i = 0; i < 3; i++) store.add(testFlowEvent({ timeMs: T0 + i, node: "a" }));
    for (let i = 0; i < 3; i++) store.add(testFlowEvent({ timeMs: T0 + i, node: "b" }));
    const byName = Object.fromEntries(store.nodes().connected.map((n) => [n.name, n]));
    expect(byName.a).toMatchObject({ numFlows: 1, seenFlows: 3 });
    expect(byName.b).toMatchObject({ numFlows: 3, seenFlows: 3 });
  });

  test("namespaces without a flow for an hour are no longer listed; the rest sorted", () => {
    let now = T0;
    const store = new FlowStore({ maxFlows: 16, now: () => now });
    store.add(testFlowEvent({ timeMs: now, srcNamespace: "old" }));
    now += 10 * 60_000;
    store.add(testFlowEvent({ timeMs: now, srcNamespace: "zeta", dstNamespace: "Alpha" }));
    store.add(testFlowEvent({ timeMs: now, srcNamespace: "beta" }));
    expect(store.namespaces().map((n) => n.namespace)).toEqual(["Alpha", "beta", "old", "zeta"]);
    now = T0 + NAMESPACE_TTL_MS + 1;
    expect(store.namespaces().map((n) => n.namespace)).toEqual(["Alpha", "beta", "zeta"]);
    store.add(testFlowEvent({ timeMs: now, srcNamespace: "old" }));
    expect(store.namespaces().map((n) => n.namespace)).toContain("old");
  });
});

describe("GetNodes", () => {
  test("fills every Node field from the store and the collector's heartbeat", async () => {
    const store = new FlowStore({ maxFlows: 8 });
    const table = new PresenceTable({}, Date.now());
    table.observe(beat("a", "up", { startedMs: Date.now() - 5000 }));
    table.observe(beat("idle", "up", { startedMs: Date.now() - 2000, version: undefined }));
    for (let i = 0; i < 10; i++) store.add(testFlowEvent({ timeMs: T0 + i, node: "a" }));
    const client = createClient(
      Observer,
      createRouterTransport(
        observerRoutes({ store, nodeName: "o", version: "v", presence: presenceOf(table) }),
      ),
    );
    const { nodes } = await client.getNodes({});
    expect(nodes.map((n) => n.name)).toEqual(["a", "idle"]);
    const [a, idle] = nodes;
    expect(a).toMatchObject({
      name: "a",
      version: "periscope 1.2.3",
      address: "",
      state: NodeState.NODE_CONNECTED,
      numFlows: 8n,
      maxFlows: 8n,
      seenFlows: 10n,
    });
    expect(a?.tls?.enabled).toBe(false);
    expect(Number(a?.uptimeNs) / 1e6).toBeGreaterThanOrEqual(5000);
    expect(Number(a?.uptimeNs) / 1e6).toBeLessThan(60_000);
    expect(idle).toMatchObject({ version: "", numFlows: 0n, seenFlows: 0n });
    expect(idle?.state).toBe(NodeState.NODE_CONNECTED);
  });

  test("a node whose collector went silent is unavailable", () => {
    const store = new FlowStore({ maxFlows: 8 });
    store.add(testFlowEvent({ timeMs: T0, node: "a" }));
    const now = Date.now();
    const table = new PresenceTable({}, now);
    table.observe(beat("a", "up", { sentMs: now }), now);
    table.observe(beat("a", "exited"), now);
    const nodes = listNodes(store, presenceOf(table));
    expect(nodes.map((n) => [n.name, n.state])).toEqual([["a", NodeState.NODE_UNAVAILABLE]]);
  });
});

describe("peer.Peer/Notify", () => {
  test("PEER_ADDED per known collector, then added and deleted as they come and go", async () => {
    const store = new FlowStore({ maxFlows: 8 });
    const table = new PresenceTable({}, Date.now());
    table.observe(beat("b", "up", { sentMs: Date.now() }));
    table.observe(beat("a", "up", { sentMs: Date.now() }));
    const client = createClient(
      Peer,
      createRouterTransport(
        observerRoutes({
          store,
          nodeName: "o",
          version: "v",
          presence: presenceOf(table),
          peerPollMs: 10,
        }),
      ),
    );
    const abort = new AbortController();
    const it = client.notify({}, { signal: abort.signal })[Symbol.asyncIterator]();
    const next = async () => {
      const r = await it.next();
      if (r.done) throw new Error("Notify ended");
      return [r.value.name, r.value.type, r.value.address, r.value.tls] as const;
    };
    const ADDED = ChangeNotificationType.PEER_ADDED;
    expect(await next()).toEqual(["a", ADDED, "", undefined]);
    expect(await next()).toEqual(["b", ADDED, "", undefined]);
    table.observe(beat("c", "up", { sentMs: Date.now() }));
    expect(await next()).toEqual(["c", ADDED, "", undefined]);
    table.observe(beat("a", "stopping"));
    expect(await next()).toEqual(["a", ChangeNotificationType.PEER_DELETED, "", undefined]);
    abort.abort();
    await it.return?.();
  });
});
