import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import type { Subscription } from "@nats-io/transport-node";
import {
  type Bus,
  connectBus,
  type InterfaceRegistry,
  openInterfaceRegistry,
  sanitizeToken,
} from "@periscope/bus";
import { MESSAGE_TYPE } from "@periscope/model";
import { createLogger } from "@periscope/telemetry";
import {
  addVeth,
  createNetnsPair,
  type LocalNats,
  type NetnsPair,
  runOk,
  startLocalNats,
  tcFilterProgIds,
  waitForValue,
} from "@periscope/testing";
import {
  decodeRawFrame,
  decodeRecordType,
  decodeTraceRecord,
  rawFrameRecords,
} from "@periscope/wire";
import { type Collector, startCollector } from "./collector.ts";
import { DEFAULT_BPF_OBJECT, parseConfig } from "./config.ts";

const canRun = process.getuid?.() === 0 && existsSync(DEFAULT_BPF_OBJECT);
const IP_A = "10.232.0.1";
const IP_B = "10.232.0.2";
const silent = createLogger("collector", "silent");

/** ICMP echo records seen on a node: ifindex, netns cookie and ICMP type of each. */
interface Echo {
  ifindex: number;
  netnsCookie: bigint;
  icmpType: number;
}

describe.skipIf(!canRun)("interface discovery (root, real netns and nats-server)", () => {
  let nats: LocalNats;
  let bus: Bus;
  let registry: InterfaceRegistry;
  let ns: NetnsPair;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    nats = await startLocalNats({});
    bus = await connectBus({ url: nats.url, name: "psct-reader", log: silent });
    registry = await openInterfaceRegistry(bus);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    await registry?.close();
    await bus?.close();
    await nats?.stop();
  });

  /** Fresh namespaces per test (destroyed in afterEach) and names derived from them. */
  async function setup(): Promise<{ node: string; ifA: string; ifB: string }> {
    ns = await createNetnsPair();
    cleanups.push(() => ns.destroy());
    return { node: `psct-node-${ns.id}`, ifA: `pv${ns.id}`, ifB: `pw${ns.id}` };
  }

  async function start(node: string, interfaces: string, extra: string[] = []): Promise<Collector> {
    const config = parseConfig(
      [
        `--nats-url=${nats.url}`,
        `--node-name=${node}`,
        `--interfaces=${interfaces}`,
        "--ops-addr=127.0.0.1:0",
        "--frame-max-delay-ms=20",
        ...extra,
      ],
      {},
    );
    const collector = await startCollector(config, { log: silent });
    cleanups.push(() => collector.stop());
    return collector;
  }

  function echoes(node: string): { seen: Echo[]; sub: Subscription } {
    const seen: Echo[] = [];
    const sub = bus.nc.subscribe(`periscope.raw.${sanitizeToken(node)}.>`, {
      callback: (err, msg) => {
        if (err) throw err;
        for (const bytes of rawFrameRecords(decodeRawFrame(msg.data)).records) {
          // Kernel drop records share the frames; only trace records carry the echoes.
          if (decodeRecordType(bytes) !== MESSAGE_TYPE.TRACE) continue;
          const rec = decodeTraceRecord(bytes);
          const d = rec.data;
          // Ethernet + IPv4 (IHL 5) + ICMP: protocol at 23, ICMP type at 34.
          if (d.length >= 35 && d[12] === 0x08 && d[13] === 0 && d[23] === 1) {
            seen.push({
              ifindex: rec.ifindex,
              netnsCookie: rec.netnsCookie,
              icmpType: d[34] ?? -1,
            });
          }
        }
      },
    });
    cleanups.push(async () => sub.unsubscribe());
    return { seen, sub };
  }

  const ping = () =>
    runOk(["ip", "netns", "exec", ns.nsA, "ping", "-c", "2", "-i", "0.05", "-W", "2", IP_B]);

  async function metric(c: Collector, line: RegExp): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${c.opsPort}/metrics`)).text();
    return Number(line.exec(text)?.[1] ?? Number.NaN);
  }

  /** Waits until pings over a device show up as records from `ifindex`, both directions. */
  async function expectTraffic(seen: Echo[], ifindex: number): Promise<Echo[]> {
    await ping();
    return waitForValue(
      () => {
        const mine = seen.filter((e) => e.ifindex === ifindex);
        return mine.some((e) => e.icmpType === 8) && mine.some((e) => e.icmpType === 0)
          ? mine
          : undefined;
      },
      { what: `echo request and reply records from ifindex ${ifindex}` },
    );
  }

  test("discovery - a glob attaches a veth created after start and registers it", async () => {
    const { node, ifA, ifB } = await setup();
    const { seen } = echoes(node);
    const c = await start(node, `${ns.nsA}/pv*`, ["--discovery-interval-ms=100"]);
    expect(c.attached()).toEqual([]);

    const ifindex = await addVeth(ns, ifA, ifB, IP_A, IP_B);
    await waitForValue(() => (c.attached().includes(`${ns.nsA}/${ifA}`) ? true : undefined), {
      what: "the new veth to be attached",
    });
    const dev = c.devices()[0];
    expect(dev?.ifindex).toBe(ifindex);
    expect(dev?.netnsCookie).toBeGreaterThan(0n);
    expect(await tcFilterProgIds(ns.nsA, ifA, "ingress")).toHaveLength(1);
    expect(await tcFilterProgIds(ns.nsA, ifA, "egress")).toHaveLength(1);

    // The cookie read with SO_NETNS_COOKIE is the one the kernel puts in the records.
    const mine = await expectTraffic(seen, ifindex);
    expect(new Set(mine.map((e) => e.netnsCookie))).toEqual(new Set([dev?.netnsCookie ?? -1n]));

    const info = await waitForValue(() => registry.lookup(node, dev?.netnsCookie ?? 0n, ifindex), {
      what: "the registry entry",
    });
    expect(info).toEqual({ name: ifA, netns: ns.nsA });
    expect(await metric(c, /periscope_collector_attached_interfaces (\d+)/)).toBe(1);
    expect(await metric(c, /periscope_collector_interface_attaches_total (\d+)/)).toBe(1);

    await c.stop();
    await waitForValue(
      () =>
        registry.lookup(node, dev?.netnsCookie ?? 0n, ifindex) === undefined ? true : undefined,
      { what: "the registry entry to go on stop" },
    );
    expect(await tcFilterProgIds(ns.nsA, ifA, "ingress")).toEqual([]);
  });

  test("discovery - a deleted device is forgotten and attached again when it comes back", async () => {
    const { node, ifA, ifB } = await setup();
    const { seen } = echoes(node);
    const first = await addVeth(ns, ifA, ifB, IP_A, IP_B);
    const c = await start(node, `${ns.nsA}/*`, ["--discovery-interval-ms=100"]);
    // `*` skips the namespace's loopback device.
    expect(c.attached()).toEqual([`${ns.nsA}/${ifA}`]);
    const cookie = c.devices()[0]?.netnsCookie ?? 0n;
    await waitForValue(() => registry.lookup(node, cookie, first), { what: "first entry" });

    await runOk(["ip", "-n", ns.nsA, "link", "del", ifA]);
    await waitForValue(() => (c.attached().length === 0 ? true : undefined), {
      what: "the deleted veth to be forgotten",
    });
    await waitForValue(
      () => (registry.lookup(node, cookie, first) === undefined ? true : undefined),
      { what: "first entry removed" },
    );
    expect(await metric(c, /interface_detaches_total\{reason="vanished"\} (\d+)/)).toBe(1);
    expect(await metric(c, /periscope_collector_attached_interfaces (\d+)/)).toBe(0);

    const second = await addVeth(ns, ifA, ifB, IP_A, IP_B);
    expect(second).not.toBe(first);
    await waitForValue(() => (c.devices()[0]?.ifindex === second ? true : undefined), {
      what: "the recreated veth to be attached",
    });
    await expectTraffic(seen, second);
    expect(
      await waitForValue(() => registry.lookup(node, cookie, second), { what: "second entry" }),
    ).toEqual({
      name: ifA,
      netns: ns.nsA,
    });
    expect(await metric(c, /periscope_collector_interface_attaches_total (\d+)/)).toBe(2);
    // Devices that vanish are not attach errors.
    expect(await metric(c, /periscope_collector_attach_errors_total (\d+)/)).toBe(0);
  });

  test("discovery - a device deleted and recreated is re-attached from notifications alone", async () => {
    const { node, ifA, ifB } = await setup();
    const { seen } = echoes(node);
    const first = await addVeth(ns, ifA, ifB, IP_A, IP_B);
    // No periodic rescan during the test: only notifications can find the new device.
    const c = await start(node, `${ns.nsA}/pv*`, ["--discovery-interval-ms=3600000"]);
    expect(c.devices().map((d) => d.ifindex)).toEqual([first]);

    await runOk(["ip", "-n", ns.nsA, "link", "del", ifA]);
    const second = await addVeth(ns, ifA, ifB, IP_A, IP_B);
    await waitForValue(() => (c.devices()[0]?.ifindex === second ? true : undefined), {
      what: "the recreated veth to be attached",
      timeoutMs: 2000,
    });
    expect(await metric(c, /interface_detaches_total\{reason="vanished"\} (\d+)/)).toBe(1);
    expect(await tcFilterProgIds(ns.nsA, ifA, "ingress")).toHaveLength(1);
    await expectTraffic(seen, second);
    const cookie = c.devices()[0]?.netnsCookie ?? 0n;
    expect(
      await waitForValue(() => registry.lookup(node, cookie, second), { what: "entry" }),
    ).toBeDefined();
    expect(registry.lookup(node, cookie, first)).toBeUndefined();
    // The full rescan finds nothing the notifications missed.
    await c.rescan();
    expect(c.devices().map((d) => d.ifindex)).toEqual([second]);
    expect(await metric(c, /periscope_collector_discovery_missed_total (\d+)/)).toBe(0);
  });

  test("discovery - overlapping patterns attach a device once", async () => {
    const { node, ifA, ifB } = await setup();
    await addVeth(ns, ifA, ifB, IP_A, IP_B);
    const c = await start(node, `${ns.nsA}/${ifA},${ns.nsA}/pv*,psct-${ns.id}-[a]/*,${ns.nsA}/*`, [
      "--discovery-interval-ms=100",
    ]);
    expect(c.attached()).toEqual([`${ns.nsA}/${ifA}`]);
    await c.rescan();
    await c.rescan();
    expect(c.attached()).toEqual([`${ns.nsA}/${ifA}`]);
    expect(await tcFilterProgIds(ns.nsA, ifA, "ingress")).toHaveLength(1);
    expect(await tcFilterProgIds(ns.nsA, ifA, "egress")).toHaveLength(1);
    expect(await metric(c, /periscope_collector_interface_attaches_total (\d+)/)).toBe(1);
  });

  test("discovery - registry entries of the node left by an earlier run are removed", async () => {
    const { node } = await setup();
    await registry.put({ node, netnsCookie: 4242n, ifindex: 77, name: "gone0", netns: "" });
    await waitForValue(() => registry.lookup(node, 4242n, 77), { what: "the stale entry" });
    const other = `psct-other-${ns.id}`;
    await registry.put({ node: other, netnsCookie: 4242n, ifindex: 77, name: "x", netns: "" });
    cleanups.push(() => registry.delete(other, 4242n, 77));
    await start(node, "");
    await waitForValue(() => (registry.lookup(node, 4242n, 77) === undefined ? true : undefined), {
      what: "the stale entry to be removed",
    });
    // Another node's entries are left alone.
    expect(registry.lookup(other, 4242n, 77)).toEqual({ name: "x", netns: "" });
  });
});
