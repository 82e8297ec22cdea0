import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { FlowSchema, Verdict } from "@periscope/proto/src/gen/flow/flow_pb.ts";
import { PageModel } from "./model.ts";
import { authHeader, type Snapshot } from "./protocol.ts";
import { SnapshotBuilder } from "./snapshot.ts";
import { FlowStore, TABLE_ROWS } from "./store.ts";

const T0 = 1_700_000_000_000;

/** Flow `i` from pod `src` to pod `dst` on TCP `port`. */
const flow = (i: number, src = "client", dst = "server", port = 80, verdict = Verdict.FORWARDED) =>
  create(FlowSchema, {
    uuid: `u${i}`,
    time: timestampFromMs(T0 + i),
    verdict,
    source: { namespace: "demo", podName: src },
    destination: { namespace: "demo", podName: dst },
    l4: { protocol: { case: "TCP", value: { sourcePort: 40000 + i, destinationPort: port } } },
    Summary: `flow ${i}`,
  });

/** What the page receives: a structured clone, as postMessage makes it. */
const post = (s: Snapshot): Snapshot => structuredClone(s);

describe("worker snapshots", () => {
  test("snapshot - only the rows the page draws, formatted, newest first; unchanged ones not again", () => {
    const store = new FlowStore();
    const b = new SnapshotBuilder(store);
    const page = new PageModel();
    b.setView(undefined, 2);
    for (let i = 0; i < 3; i++) store.onFlow(flow(i), T0);
    const s1 = post(b.build(T0, "live"));
    expect(s1.reset).toBe(true);
    expect(s1.newestId).toBe(2);
    expect(s1.total).toBe(3);
    expect(s1.rows?.map((r) => r.id)).toEqual([2, 1]);
    expect(s1.rows?.[1]).toEqual({
      id: 1,
      time: "2023-11-14 22:13:20.001",
      source: "demo/client:40001",
      destination: "demo/server:80",
      type: "L3/L4 TCP",
      verdict: "FORWARDED",
      summary: "flow 1",
    });
    page.apply(s1);
    expect(page.rowAt(0)?.summary).toBe("flow 2");
    expect(page.rowAt(1)?.summary).toBe("flow 1");
    expect(page.rowAt(2)).toBeUndefined();
    // Nothing new: no rows sent, the page keeps what it has.
    const s2 = post(b.build(T0 + 100, "live"));
    expect(s2.rows).toBeUndefined();
    page.apply(s2);
    expect(page.rowAt(0)?.summary).toBe("flow 2");
    // Following the newest: new rows come, the indices shift.
    for (let i = 3; i < 10; i++) store.onFlow(flow(i), T0);
    const s3 = post(b.build(T0 + 200, "live"));
    expect(s3.rows?.map((r) => r.id)).toEqual([9, 8]);
    page.apply(s3);
    expect(page.total).toBe(10);
    expect(page.rowAt(1)?.id).toBe(8);
    // Scrolled: rows from an id down stay the same rows as new ones come.
    b.setView(4, 3);
    const s4 = post(b.build(T0 + 300, "live"));
    expect(s4.rows?.map((r) => r.id)).toEqual([4, 3, 2]);
    page.apply(s4);
    expect(page.rowAt(5)?.summary).toBe("flow 4");
    expect(page.rowAt(0)).toBeUndefined();
    store.onFlow(flow(10), T0);
    const s5 = post(b.build(T0 + 400, "live"));
    expect(s5.rows).toBeUndefined();
    page.apply(s5);
    expect(page.newestId).toBe(10);
    expect(page.rowAt(6)?.summary).toBe("flow 4");
    // The oldest end of the kept rows: fewer than asked.
    b.setView(1, 5);
    expect(b.build(T0 + 500, "live").rows?.map((r) => r.id)).toEqual([1, 0]);
  });

  test("snapshot - rows beyond the kept ones are gone from the table", () => {
    const store = new FlowStore();
    for (let i = 0; i < TABLE_ROWS * 2 + 5; i++) store.onFlow(flow(i), T0);
    expect(store.kept()).toBe(TABLE_ROWS);
    const down = store.rowsDown(undefined, TABLE_ROWS + 10);
    expect(down).toHaveLength(TABLE_ROWS);
    expect(down[0]?.id).toBe(TABLE_ROWS * 2 + 4);
    expect(down.at(-1)?.id).toBe(TABLE_ROWS + 5);
    expect(down.at(-1)?.flow.uuid).toBe(`u${TABLE_ROWS + 5}`);
    expect(store.rowsDown(TABLE_ROWS, 3)).toEqual([]);
  });

  test("snapshot - a row's flow is found by id while kept, not after", () => {
    const store = new FlowStore();
    for (let i = 0; i < 3; i++) store.onFlow(flow(i), T0);
    expect(store.flowById(1)?.uuid).toBe("u1");
    expect(store.flowById(3)).toBeUndefined();
    expect(store.flowById(-1)).toBeUndefined();
    store.reset();
    expect(store.flowById(1)).toBeUndefined();
  });

  test("snapshot - the map: nodes placed in the worker, new edges at once, counts throttled", () => {
    const store = new FlowStore();
    const b = new SnapshotBuilder(store, { graphEveryMs: 500, layoutBackoff: 0 });
    const page = new PageModel();
    store.onFlow(flow(0), T0);
    const s1 = post(b.build(T0, "live"));
    expect(s1.graph?.nodes.map((n) => n.id).sort()).toEqual(["demo/client", "demo/server"]);
    for (const n of s1.graph?.nodes ?? []) expect(Number.isNaN(n.x)).toBe(false);
    page.apply(s1);
    expect([...page.edges.keys()]).toEqual(["demo/client->demo/server:tcp/80"]);
    const v = page.mapVersion;
    // Only a count changed, 100 ms later: not sent yet.
    store.onFlow(flow(1), T0);
    const s2 = post(b.build(T0 + 100, "live"));
    expect(s2.graph).toBeUndefined();
    page.apply(s2);
    expect(page.mapVersion).toBe(v);
    expect(page.edges.get("demo/client->demo/server:tcp/80")?.flows).toBe(1);
    // A new edge goes out at once, with the counted one; an unchanged node does not.
    store.onFlow(flow(2, "client", "db", 5432, Verdict.DROPPED), T0);
    const s3 = post(b.build(T0 + 200, "live"));
    expect(s3.graph?.edges.map((e) => e.id).sort()).toEqual([
      "demo/client->demo/db:tcp/5432",
      "demo/client->demo/server:tcp/80",
    ]);
    expect(s3.graph?.nodes.map((n) => n.id)).toEqual(["demo/db"]);
    page.apply(s3);
    expect(page.edges.get("demo/client->demo/server:tcp/80")?.flows).toBe(2);
    expect(page.edges.get("demo/client->demo/db:tcp/5432")?.verdicts.DROPPED).toBe(1);
    expect(page.nodes.size).toBe(3);
    // Counts alone after the interval.
    store.onFlow(flow(3), T0);
    expect(b.build(T0 + 300, "live").graph).toBeUndefined();
    const s4 = post(b.build(T0 + 800, "live"));
    expect(s4.graph?.edges.map((e) => e.flows)).toEqual([3]);
    expect(s4.graph?.nodes).toEqual([]);
  });

  test("snapshot - evicted edges and nodes are removed on the page", () => {
    const store = new FlowStore();
    const b = new SnapshotBuilder(store, { layoutBackoff: 0 });
    const page = new PageModel();
    store.onFlow(flow(0), T0);
    store.onFlow(flow(1, "web", "server"), T0);
    page.apply(post(b.build(T0, "live")));
    expect(page.nodes.size).toBe(3);
    // The web edge stays fresh; the client edge goes idle.
    store.graph.add(flow(2, "web", "server"), T0 + 6 * 60_000);
    expect(store.graph.evictIdle(T0 + 6 * 60_000)).toBe(1);
    const s = post(b.build(T0 + 6 * 60_000, "live"));
    expect(s.graph?.removedEdges).toEqual(["demo/client->demo/server:tcp/80"]);
    expect(s.graph?.removedNodes).toEqual(["demo/client"]);
    page.apply(s);
    expect([...page.nodes.keys()].sort()).toEqual(["demo/server", "demo/web"]);
    expect([...page.edges.keys()]).toEqual(["demo/web->demo/server:tcp/80"]);
  });

  test("snapshot - a reset (new query) clears the page; counters, pause and lost events", () => {
    const store = new FlowStore();
    const b = new SnapshotBuilder(store);
    const page = new PageModel();
    store.onFlow(flow(0), T0);
    page.apply(post(b.build(T0, "live")));
    store.reset();
    store.setPaused(true);
    store.onFlow(flow(5), T0 + 1000);
    const s = post(
      b.build(T0 + 1000, "window: 1 flows", {
        connected: 2,
        unavailable: 0,
        unavailableNodes: [],
        observerRate: 7,
      }),
    );
    expect(s.reset).toBe(true);
    page.apply(s);
    expect(page.rows).toEqual([]);
    expect(page.nodes.size).toBe(0);
    expect(page.counters).toMatchObject({ received: 1, paused: true, held: 1, rate: 0.2 });
    expect(page.stream).toBe("window: 1 flows");
    expect(page.status?.connected).toBe(2);
    store.setPaused(false);
    const s2 = post(b.build(T0 + 1100, "live", undefined, T0 - 5000));
    expect(s2.rows?.map((r) => r.id)).toEqual([0]);
    page.apply(s2);
    expect(page.rowAt(0)?.summary).toBe("flow 5");
    expect(page.oldestMs).toBe(T0 - 5000);
    expect(page.status).toBeUndefined();
  });

  test("snapshot - a slow layout waits before the next; new nodes are sent once placed", () => {
    const store = new FlowStore();
    const b = new SnapshotBuilder(store);
    store.onFlow(flow(0), T0);
    const t0 = performance.now();
    expect(b.build(T0, "live").graph?.nodes).toHaveLength(2);
    const took = performance.now() - t0;
    store.onFlow(flow(1, "client", "db"), T0);
    // Within 4× the first layout's time: not placed yet, not sent.
    const early = b.build(T0, "live");
    expect(early.graph?.nodes ?? []).toEqual([]);
    expect(store.graph.needsLayout()).toBe(true);
    const late = b.build(T0 + 4 * took + 1000, "live");
    expect(late.graph?.nodes.map((n) => n.id)).toEqual(["demo/db"]);
    expect(store.graph.needsLayout()).toBe(false);
  });

  test("auth - a bare token is a bearer token; a full header value is sent as it is", () => {
    expect(authHeader(" s3cret ")).toBe("Bearer s3cret");
    expect(authHeader("Basic dTpw")).toBe("Basic dTpw");
    expect(authHeader("bearer abc")).toBe("bearer abc");
    expect(authHeader("  ")).toBeUndefined();
  });
});
