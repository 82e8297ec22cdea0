import { describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import {
  FlowFilterSchema,
  type GetFlowsRequestSchema,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
  LostEventSource,
  NodeState,
  Observer,
  Verdict,
} from "@periscope/proto";
import { createMetrics } from "@periscope/telemetry";
import { StoredEvent } from "./event.ts";
import { createObserverMetrics, metricsInterceptor } from "./metrics.ts";
import { observerRoutes } from "./routes.ts";
import { FlowStore } from "./store.ts";
import { sourceIp, testFlowEvent } from "./testing.ts";

const T0 = Date.UTC(2024, 4, 1, 10, 0, 0);

/** An in-memory observer with `n` flows from 10.0.0.<i+1>, one second apart from T0. */
function setup(n = 10, maxFlows = 64) {
  const store = new FlowStore({ maxFlows });
  const metrics = createObserverMetrics(createMetrics("observer"));
  for (let i = 0; i < n; i++) {
    store.add(
      testFlowEvent({
        timeMs: T0 + i * 1000,
        src: `10.0.0.${i + 1}`,
        verdict: i % 2 === 0 ? Verdict.FORWARDED : Verdict.DROPPED,
        srcNamespace: i < 5 ? "ns-a" : "ns-b",
      }),
    );
  }
  const transport = createRouterTransport(
    observerRoutes({ store, nodeName: "observer-1", version: "periscope test", metrics }),
    { router: { interceptors: [metricsInterceptor(metrics)] } },
  );
  return { store, metrics, client: createClient(Observer, transport) };
}

async function collect(
  client: ReturnType<typeof setup>["client"],
  req: MessageInitShape<typeof GetFlowsRequestSchema>,
): Promise<GetFlowsResponse[]> {
  const out: GetFlowsResponse[] = [];
  for await (const resp of client.getFlows(req)) out.push(resp);
  return out;
}

/** Resolves once `n` followers are parked waiting for the next write. */
async function followersWaiting(store: FlowStore, n = 1): Promise<void> {
  const deadline = Date.now() + 5000;
  while (store.ring.waiters < n) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} followers`);
    await Bun.sleep(1);
  }
}

const ips = (...n: number[]): string[] => n.map((i) => `10.0.0.${i}`);
const ts = (sec: number) => timestampFromMs(T0 + sec * 1000);

describe("observer GetFlows", () => {
  test.each<{ name: string; req: MessageInitShape<typeof GetFlowsRequestSchema>; want: string[] }>([
    { name: "last 3", req: { number: 3n }, want: ips(8, 9, 10) },
    { name: "first 3", req: { number: 3n, first: true }, want: ips(1, 2, 3) },
    { name: "number 0 returns all", req: {}, want: ips(1, 2, 3, 4, 5, 6, 7, 8, 9, 10) },
    {
      name: "last beyond ring returns all",
      req: { number: 50n },
      want: ips(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
    },
    { name: "since/until window", req: { since: ts(3), until: ts(6) }, want: ips(4, 5, 6, 7) },
    {
      name: "since with number reads from since",
      req: { since: ts(3), number: 2n },
      want: ips(4, 5),
    },
    { name: "until alone", req: { until: ts(1) }, want: ips(1, 2) },
    {
      name: "whitelist source_ip",
      req: { whitelist: [create(FlowFilterSchema, { sourceIp: ["10.0.0.2", "10.0.0.7"] })] },
      want: ips(2, 7),
    },
    {
      name: "whitelist minus blacklist",
      req: {
        whitelist: [create(FlowFilterSchema, { sourcePod: ["ns-a/"] })],
        blacklist: [create(FlowFilterSchema, { verdict: [Verdict.DROPPED] })],
      },
      want: ips(1, 3, 5),
    },
    {
      name: "last N counts matching flows only",
      req: { number: 2n, whitelist: [create(FlowFilterSchema, { verdict: [Verdict.DROPPED] })] },
      want: ips(8, 10),
    },
  ])("observer - GetFlows $name", async ({ req, want }) => {
    const { client } = setup();
    const got = await collect(client, req);
    expect(got.map(sourceIp)).toEqual(want);
    for (const r of got) {
      expect(r.nodeName).toBe("node-a");
      expect(r.time).toBeDefined();
    }
  });

  test("observer - follow receives flows pushed after the call started", async () => {
    const { store, client } = setup(3);
    const ac = new AbortController();
    const stream = client.getFlows({ follow: true, number: 1n }, { signal: ac.signal });
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    expect(sourceIp(first.value as GetFlowsResponse)).toBe("10.0.0.3");
    const pending = it.next();
    await followersWaiting(store);
    store.add(testFlowEvent({ timeMs: T0 + 60_000, src: "192.168.1.1" }));
    store.add(testFlowEvent({ timeMs: T0 + 61_000, src: "192.168.1.2" }));
    expect(sourceIp((await pending).value as GetFlowsResponse)).toBe("192.168.1.1");
    expect(sourceIp((await it.next()).value as GetFlowsResponse)).toBe("192.168.1.2");
    ac.abort();
    await expect(it.next()).rejects.toThrow();
  });

  test("observer - follow with filter skips non-matching new flows", async () => {
    const { store, client } = setup(0);
    const ac = new AbortController();
    const stream = client.getFlows(
      { follow: true, whitelist: [create(FlowFilterSchema, { sourceIp: ["172.16.0.9"] })] },
      { signal: ac.signal },
    );
    const it = stream[Symbol.asyncIterator]();
    const pending = it.next();
    await followersWaiting(store);
    store.add(testFlowEvent({ timeMs: T0, src: "172.16.0.1" }));
    store.add(testFlowEvent({ timeMs: T0, src: "172.16.0.9" }));
    expect(sourceIp((await pending).value as GetFlowsResponse)).toBe("172.16.0.9");
    ac.abort();
  });

  test("observer - lapped follower gets a HUBBLE_RING_BUFFER LostEvent", async () => {
    const { store, client, metrics } = setup(0, 4);
    const ac = new AbortController();
    const it = client.getFlows({ follow: true }, { signal: ac.signal })[Symbol.asyncIterator]();
    const firstP = it.next();
    await followersWaiting(store);
    store.add(testFlowEvent({ timeMs: T0, src: "10.9.0.0" }));
    expect(sourceIp((await firstP).value as GetFlowsResponse)).toBe("10.9.0.0");
    // Ten writes into a 4-slot ring while the follower is not reading.
    for (let i = 1; i <= 10; i++) store.add(testFlowEvent({ timeMs: T0 + i, src: `10.9.0.${i}` }));
    let lost = 0n;
    const delivered: string[] = [];
    while (delivered.at(-1) !== "10.9.0.10") {
      const r = (await it.next()).value as GetFlowsResponse;
      if (r.responseTypes.case === "lostEvents") {
        expect(r.responseTypes.value.source).toBe(LostEventSource.HUBBLE_RING_BUFFER);
        expect(r.nodeName).toBe("observer-1");
        lost += r.responseTypes.value.numEventsLost;
      } else delivered.push(sourceIp(r));
    }
    ac.abort();
    expect(lost).toBeGreaterThan(0n);
    expect(Number(lost) + delivered.length).toBe(10);
    expect(delivered).toEqual(ips(7, 8, 9, 10).map((s) => s.replace("10.0.0.", "10.9.0.")));
    const text = await metrics.eventsLost.get();
    expect(text.values.find((v) => v.labels.where === "ring_buffer")?.value).toBe(Number(lost));
  });

  test("observer - stored LostEvents pass any whitelist and blacklist", async () => {
    const { store, client } = setup(2);
    store.add(
      StoredEvent.fromResponse(
        create(GetFlowsResponseSchema, {
          nodeName: "node-a",
          time: ts(5),
          responseTypes: {
            case: "lostEvents",
            value: { source: LostEventSource.OBSERVER_EVENTS_QUEUE, numEventsLost: 7n },
          },
        }),
      ),
    );
    const got = await collect(client, {
      whitelist: [create(FlowFilterSchema, { sourceIp: ["192.0.2.1"] })],
      blacklist: [create(FlowFilterSchema, {})],
    });
    expect(got.map((r) => r.responseTypes.case)).toEqual(["lostEvents"]);
    const lost = got[0]?.responseTypes;
    expect(lost?.case === "lostEvents" ? lost.value.numEventsLost : 0n).toBe(7n);
  });

  test("observer - invalid filter is InvalidArgument naming the field", async () => {
    const { client } = setup();
    const err = await collect(client, {
      whitelist: [create(FlowFilterSchema, { sourceIp: ["not-an-ip"] })],
    }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain("source_ip");
  });

  test("observer - first with follow is InvalidArgument", async () => {
    const { client, metrics } = setup();
    const err = await collect(client, { first: true, follow: true }).catch((e: unknown) =>
      ConnectError.from(e),
    );
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toBe("first cannot be specified with follow");
    const counts = await metrics.requests.get();
    expect(
      counts.values.find(
        (v) => v.labels.method === "GetFlows" && v.labels.code === "invalid_argument",
      )?.value,
    ).toBe(1);
  });
});

describe("observer status", () => {
  test("observer - ServerStatus reports ring and node counters", async () => {
    const { client, store } = setup(10, 8);
    store.add(testFlowEvent({ timeMs: T0, node: "node-b" }));
    const s = await client.serverStatus({});
    expect(s.numFlows).toBe(8n);
    expect(s.maxFlows).toBe(8n);
    expect(s.seenFlows).toBe(11n);
    expect(s.version).toBe("periscope test");
    expect(s.uptimeNs).toBeGreaterThanOrEqual(0n);
    expect(s.numConnectedNodes).toBe(2);
    expect(s.numUnavailableNodes).toBe(0);
    expect(s.flowsRate).toBeGreaterThan(0);
  });

  test("observer - GetNodes lists nodes seen on the bus as connected", async () => {
    const { client, store } = setup(2);
    store.add(testFlowEvent({ timeMs: T0, node: "node-b" }));
    const { nodes } = await client.getNodes({});
    expect(nodes.map((n) => [n.name, n.state, n.seenFlows])).toEqual([
      ["node-a", NodeState.NODE_CONNECTED, 2n],
      ["node-b", NodeState.NODE_CONNECTED, 1n],
    ]);
  });

  test("observer - GetNamespaces lists namespaces from flow endpoints", async () => {
    const { client } = setup(10);
    const { namespaces } = await client.getNamespaces({});
    expect(namespaces.map((n) => n.namespace)).toEqual(["ns-a", "ns-b"]);
  });

  test.each([
    ["GetAgentEvents", "getAgentEvents"],
    ["GetDebugEvents", "getDebugEvents"],
  ] as const)("observer - %s without follow is an empty stream", async (_name, method) => {
    const { client } = setup();
    const got: unknown[] = [];
    for await (const r of client[method]({})) got.push(r);
    expect(got).toEqual([]);
  });

  test("observer - GetAgentEvents with follow stays open until cancelled", async () => {
    const { client } = setup();
    const ac = new AbortController();
    const it = client
      .getAgentEvents({ follow: true }, { signal: ac.signal })
      [Symbol.asyncIterator]();
    const next = it.next();
    let settled = false;
    void next.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await Bun.sleep(20);
    expect(settled).toBe(false);
    ac.abort();
    await expect(next).rejects.toThrow();
  });
});
