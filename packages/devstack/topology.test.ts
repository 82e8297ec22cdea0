import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import {
  addNetnsForTest,
  cleanupStale,
  createDemoTopology,
  DevstackError,
  demoTraffic,
  listNetns,
  type Topology,
  waitFor,
} from "./testing.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("SKIP devstack topology tests: they need root (ip netns)");
const prefix = `psct-${randomBytes(3).toString("hex")}-`;

describe.skipIf(!isRoot)("devstack", () => {
  let topo: Topology;
  beforeAll(async () => {
    topo = await createDemoTopology({ prefix });
  });
  afterAll(async () => {
    await topo?.destroy();
    await cleanupStale(prefix);
  });

  test("topology - creates the node and one netns per pod", async () => {
    const names = (await listNetns()).filter((n) => n.startsWith(prefix)).sort();
    expect(names).toEqual([
      `${prefix}backend`,
      `${prefix}db`,
      `${prefix}frontend`,
      `${prefix}node`,
    ]);
    expect(topo.interfaces).toEqual([
      `${prefix}frontend/eth0`,
      `${prefix}backend/eth0`,
      `${prefix}db/eth0`,
    ]);
    expect(topo.pod("backend")).toMatchObject({
      namespace: "demo",
      labels: ["app=backend"],
      ipv4: "10.200.0.11",
      ipv6: "fd00:200::b",
      hostIfname: "vbackend",
    });
    const links = await topo.exec("node", ["ip", "-br", "link", "show", "master", "br0"]);
    expect(links.stdout).toContain("vfrontend@");
    expect(() => topo.pod("nope")).toThrow(DevstackError);
  });

  test.each([
    ["frontend", "backend", "ipv4"],
    ["frontend", "db", "ipv6"],
    ["db", "frontend", "ipv6"],
    ["backend", "db", "ipv4"],
  ] as const)("topology - %s pings %s over %s", async (from, to, family) => {
    const target = topo.pod(to)[family];
    const r = await topo.exec(from, [
      "ping",
      family === "ipv6" ? "-6" : "-4",
      "-c",
      "1",
      "-W",
      "2",
      target,
    ]);
    expect(r.stdout).toContain("1 received");
    expect(r.code).toBe(0);
  });

  test("topology - pods reach the bridge address", async () => {
    const r = await topo.exec("db", ["ping", "-c", "1", "-W", "2", "10.200.0.1"]);
    expect(r.code).toBe(0);
  });

  test("topology - TCP connects across pods", async () => {
    const server = topo.spawn("backend", ["nc", "-l", "-p", "7000"]);
    try {
      await waitFor(
        async () =>
          (await topo.exec("backend", ["ss", "-Hltn", "sport = :7000"])).stdout.includes("7000"),
        {
          what: "nc listening",
        },
      );
      const r = await topo.exec(
        "frontend",
        ["nc", "-N", "-w", "2", topo.pod("backend").ipv4, "7000"],
        {
          stdin: "hello over tcp\n",
        },
      );
      expect(r.code).toBe(0);
      expect(await new Response(server.stdout).text()).toBe("hello over tcp\n");
    } finally {
      server.kill("SIGKILL");
      await server.exited;
    }
  });

  test("traffic - generates TCP, UDP and ICMP rounds that succeed, then stops", async () => {
    const traffic = await demoTraffic(topo, { intervalMs: 50 });
    try {
      await waitFor(() => traffic.stats().rounds >= 2, {
        timeoutMs: 15_000,
        what: "two traffic rounds",
      });
    } finally {
      await traffic.stop();
      await traffic.stop();
    }
    const s = traffic.stats();
    expect(s.failed).toBe(0);
    expect(s.ok).toBe(s.rounds * 5);
    const after = s.rounds;
    // The loop has ended: no more rounds are counted.
    expect(traffic.stats().rounds).toBe(after);
  });

  test("topology - bad pod names are refused before anything is created", async () => {
    const p = `${prefix}bad-`;
    await expect(createDemoTopology({ prefix: p, pods: [{ name: "Bad_Name" }] })).rejects.toThrow(
      DevstackError,
    );
    expect((await listNetns()).filter((n) => n.startsWith(p))).toEqual([]);
  });

  test("topology - destroy removes every namespace and is safe twice", async () => {
    const p = `${prefix}d-`;
    const t = await createDemoTopology({ prefix: p, pods: [{ name: "a" }, { name: "b" }] });
    const child = t.spawn("a", ["sleep", "60"]);
    expect((await listNetns()).filter((n) => n.startsWith(p))).toHaveLength(3);
    await t.destroy();
    await t.destroy();
    expect((await listNetns()).filter((n) => n.startsWith(p))).toEqual([]);
    expect(child.signalCode).toBe("SIGKILL");
  });

  test("cleanup - cleanupStale removes leftovers by prefix and refuses an empty prefix", async () => {
    const p = `${prefix}s-`;
    await addNetnsForTest(`${p}x`);
    await addNetnsForTest(`${p}y`);
    expect((await cleanupStale(p)).sort()).toEqual([`${p}x`, `${p}y`]);
    expect((await listNetns()).filter((n) => n.startsWith(p))).toEqual([]);
    await expect(cleanupStale("")).rejects.toThrow(DevstackError);
  });
});
