import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { canConnect, freePort, type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import {
  type Bus,
  BusConnectError,
  BusInputError,
  connectBus,
  ENDPOINTS_BUCKET,
  endpointKey,
  normalizeIp,
  openEndpointRegistry,
  parseStoredEndpoint,
  sanitizeToken,
  subjects,
} from "./index.ts";
import type { BusLogger } from "./log.ts";

const log: BusLogger = { debug() {}, info() {}, warn() {}, error() {} };

describe("bus", () => {
  let server: LocalNats;
  const buses: Bus[] = [];
  const open = async (name: string): Promise<Bus> => {
    const b = await connectBus({ url: server.url, name, log });
    buses.push(b);
    return b;
  };

  beforeAll(async () => {
    server = await startLocalNats({ port: 0 });
  });
  afterAll(async () => {
    for (const b of buses) await b.close();
    await server?.stop();
  });

  test.each([
    ["node-1", "node-1"],
    ["my.host.example", "my_host_example"],
    ["a b*>c", "a_b__c"],
    ["", "_"],
  ])("subjects - sanitizeToken(%p) = %p", (input, want) => {
    expect(sanitizeToken(input)).toBe(want);
  });

  test("subjects - builds the documented subjects", () => {
    expect(subjects.raw("n.1", 3)).toBe("periscope.raw.n_1.3");
    expect(subjects.rawNode("n1")).toBe("periscope.raw.n1.*");
    expect(subjects.flows("n1")).toBe("periscope.flows.n1");
    expect(subjects.ctl("n1", "capture")).toBe("periscope.ctl.n1.capture");
    expect(subjects.rawAll).toBe("periscope.raw.>");
    expect(subjects.flowsAll).toBe("periscope.flows.>");
    expect(() => subjects.raw("n", -1)).toThrow(BusInputError);
    expect(() => subjects.raw("n", 1.5)).toThrow(BusInputError);
  });

  test.each([
    ["10.0.0.1", "10.0.0.1"],
    ["FD00:200:0:0::A", "fd00_200__a"],
    ["::1", "__1"],
  ])("endpoints - key for %p is %p", (ip, key) => {
    expect(endpointKey(ip)).toBe(key);
  });

  test.each(["", "300.1.1.1", "pod", "1.2.3", "::g"])("endpoints - %p is not an IP", (ip) => {
    expect(() => normalizeIp(ip)).toThrow(BusInputError);
  });

  test("endpoints - stored id and identity are read back as numbers", () => {
    const base = { ip: "10.0.0.1", namespace: "ns", pod_name: "p", labels: ["a=b"] };
    expect(parseStoredEndpoint({ ...base, id: 7, identity: 4242 })).toEqual({
      ip: "10.0.0.1",
      namespace: "ns",
      podName: "p",
      labels: ["a=b"],
      id: 7,
      identity: 4242,
    });
    expect(() => parseStoredEndpoint({ ...base, identity: "4242" })).toThrow(/"identity"/);
  });

  test("local - the server accepts connections and JetStream works", async () => {
    expect(await canConnect(server.host, server.port)).toBe(true);
    const bus = await open("t-js");
    const jsm = await bus.jsm();
    const info = await jsm.getAccountInfo();
    expect(info.limits).toBeDefined();
    expect(bus.connected()).toBe(true);
  });

  test("bus - publish and subscribe round-trip on a raw subject", async () => {
    const bus = await open("t-pubsub");
    const sub = bus.nc.subscribe(subjects.rawNode("node-a"), { max: 1 });
    bus.nc.publish(subjects.raw("node-a", 2), new Uint8Array([1, 2, 3]));
    for await (const m of sub) {
      expect(m.subject).toBe("periscope.raw.node-a.2");
      expect([...m.data]).toEqual([1, 2, 3]);
    }
    expect(sub.getProcessed()).toBe(1);
  });

  test("bus - close is safe twice and closes the connection", async () => {
    const bus = await connectBus({ url: server.url, name: "t-close", log });
    await bus.close();
    await bus.close();
    expect(bus.nc.isClosed()).toBe(true);
    expect(bus.connected()).toBe(false);
  });

  test("bus - an unreachable URL is a BusConnectError after firstConnectTimeoutMs", async () => {
    const dead = await startLocalNats({ port: 0 });
    const url = dead.url;
    await dead.stop();
    expect(await canConnect(dead.host, dead.port)).toBe(false);
    const t0 = performance.now();
    await expect(
      connectBus({ url, name: "t-dead", log, timeoutMs: 200, firstConnectTimeoutMs: 600 }),
    ).rejects.toThrow(BusConnectError);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(300);
  });

  test("bus - keeps retrying until a broker answers and never starts one itself", async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    let settled = false;
    const connecting = connectBus({ url, name: "t-late", log, timeoutMs: 200 }).finally(() => {
      settled = true;
    });
    await Bun.sleep(400); // the broker is down for a while on purpose
    expect(settled).toBe(false);
    expect(await canConnect("127.0.0.1", port)).toBe(false);
    const late = await startLocalNats({ port });
    try {
      const bus = await connecting;
      expect(bus.connected()).toBe(true);
      await bus.close();
    } finally {
      await late.stop();
    }
  });

  test("bus - an aborted first connection is a BusConnectError", async () => {
    const abort = new AbortController();
    const connecting = connectBus({
      url: `nats://127.0.0.1:${await freePort()}`,
      name: "t-abort",
      log,
      timeoutMs: 100,
      signal: abort.signal,
    });
    abort.abort();
    await expect(connecting).rejects.toThrow(BusConnectError);
  });

  test("local - stop ends the process and removes its temp store dir", async () => {
    const s = await startLocalNats({});
    expect(existsSync(s.storeDir)).toBe(true);
    await s.stop();
    await s.stop();
    expect(await canConnect(s.host, s.port)).toBe(false);
    expect(existsSync(s.storeDir)).toBe(false);
    expect(() => process.kill(s.pid, 0)).toThrow();
  });

  test("endpoints - existing entries load before ready, later changes apply via the watch", async () => {
    const writer = await open("t-ep-writer");
    const first = await openEndpointRegistry(writer);
    await first.put({
      ip: "10.200.0.10",
      namespace: "demo",
      podName: "frontend",
      labels: ["app=frontend"],
      nodeName: "n1",
    });
    await first.put({ ip: "fd00:200::a", namespace: "demo", podName: "frontend", labels: [] });
    // A value that is not an endpoint must be skipped and counted, not crash the watch.
    const kv = await writer.kvm().open(ENDPOINTS_BUCKET);
    await kv.put("garbage", "{not json");

    const reader = await open("t-ep-reader");
    const reg = await openEndpointRegistry(reader);
    try {
      await reg.ready;
      expect(reg.lookup("10.200.0.10")).toEqual({
        namespace: "demo",
        podName: "frontend",
        labels: ["app=frontend"],
        nodeName: "n1",
      });
      expect(reg.lookup("FD00:200:0::A")?.podName).toBe("frontend");
      expect(reg.lookup("10.9.9.9")).toBeUndefined();
      expect(reg.lookup("not-an-ip")).toBeUndefined();
      expect(reg.malformed()).toBe(1);

      await first.put({ ip: "10.200.0.11", namespace: "demo", podName: "backend", labels: [] });
      await waitFor(() => reg.lookup("10.200.0.11") !== undefined, { what: "endpoint to appear" });
      expect(reg.lookup("10.200.0.11")?.podName).toBe("backend");

      await first.delete("10.200.0.10");
      await waitFor(() => reg.lookup("10.200.0.10") === undefined, { what: "endpoint to go" });
      expect(
        reg
          .entries()
          .map((e) => e.ip)
          .sort(),
      ).toEqual(["10.200.0.11", "fd00:200::a"]);
      const stored = await kv.get(endpointKey("10.200.0.11"));
      expect(stored?.json<unknown>()).toEqual({
        ip: "10.200.0.11",
        namespace: "demo",
        pod_name: "backend",
        labels: [],
      });
    } finally {
      await reg.close();
      await first.close();
    }
  });

  test("endpoints - ready resolves on an empty bucket", async () => {
    const bus = await open("t-ep-empty");
    const kvm = bus.kvm();
    // Start from a fresh bucket so the empty case is real.
    const kv = await kvm.create(ENDPOINTS_BUCKET);
    await kv.destroy();
    const reg = await openEndpointRegistry(bus);
    try {
      await reg.ready;
      expect(reg.entries()).toEqual([]);
    } finally {
      await reg.close();
    }
  });
});
