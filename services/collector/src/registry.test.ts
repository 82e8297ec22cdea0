import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  type Bus,
  BusInputError,
  connectBus,
  type InterfaceRegistry,
  interfaceKey,
  openInterfaceRegistry,
  parseStoredInterface,
} from "@periscope/bus";
import { createLogger, createMetrics } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitForValue } from "@periscope/testing";
import { CollectorMetrics } from "./metrics.ts";
import { InterfaceRegistrySync } from "./registry.ts";

const log = createLogger("collector", "silent");

describe("interface registry", () => {
  test.each([
    { node: "n1", cookie: 4096n, ifindex: 3, want: "n1.4096.3" },
    { node: "my.host name", cookie: 1n, ifindex: 12, want: "my_host_name.1.12" },
    { node: "", cookie: 0n, ifindex: 1, want: "_.0.1" },
  ])("interface registry - key of $node $cookie $ifindex is $want", (c) => {
    expect(interfaceKey(c.node, c.cookie, c.ifindex)).toBe(c.want);
  });

  test.each([
    { cookie: -1n, ifindex: 1 },
    { cookie: 1n, ifindex: 0 },
    { cookie: 1n, ifindex: 1.5 },
  ])("interface registry - key rejects cookie $cookie ifindex $ifindex", (c) => {
    expect(() => interfaceKey("n", c.cookie, c.ifindex)).toThrow(BusInputError);
  });

  test.each([
    {
      value: { node: "n", ifindex: 4, name: "eth0", netns: "ns1", netns_cookie: "99" },
      want: { node: "n", ifindex: 4, name: "eth0", netns: "ns1", netnsCookie: 99n },
    },
    {
      value: { node: "n", ifindex: 4, name: "eth0", netns: "" },
      want: { node: "n", ifindex: 4, name: "eth0", netns: "", netnsCookie: 7n },
    },
  ])("interface registry - parses $value", ({ value, want }) => {
    expect(parseStoredInterface("n.7.4", value)).toEqual(want);
  });

  test.each([
    { value: null, field: "object" },
    { value: { node: "n", ifindex: "4", name: "eth0" }, field: "ifindex" },
    { value: { node: "n", ifindex: 4 }, field: "name" },
    { value: { node: "n", ifindex: 4, name: "e", netns_cookie: "x" }, field: "netns_cookie" },
  ])("interface registry - rejects a value without a good $field", ({ value, field }) => {
    expect(() => parseStoredInterface("n.7.4", value)).toThrow(field);
  });

  describe("with nats-server", () => {
    let nats: LocalNats;
    let bus: Bus;
    let reader: InterfaceRegistry;
    beforeAll(async () => {
      nats = await startLocalNats({});
      bus = await connectBus({ url: nats.url, name: "psct-registry", log });
      reader = await openInterfaceRegistry(bus);
    });
    afterAll(async () => {
      await reader?.close();
      await bus?.close();
      await nats?.stop();
    });

    test("interface registry - sync retries after the registry could not be opened", async () => {
      const metrics = new CollectorMetrics(createMetrics("collector"));
      let opens = 0;
      const sync = new InterfaceRegistrySync({
        node: "psct-sync",
        metrics,
        log,
        open: async () => {
          opens++;
          if (opens === 1) throw new Error("JetStream not available yet");
          return openInterfaceRegistry(bus);
        },
      });
      const dev = { name: "ns1/e0", target: { ifname: "e0", netns: "ns1" }, ifindex: 5 };
      sync.update([{ ...dev, netnsCookie: 31n }]);
      await sync.sync();
      expect(sync.storedKeys()).toEqual([]);
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/periscope_collector_errors_total\{kind="registry"\} 1/);

      await sync.sync();
      expect(sync.storedKeys()).toEqual(["psct-sync.31.5"]);
      expect(
        await waitForValue(() => reader.lookup("psct-sync", 31n, 5), { what: "entry" }),
      ).toEqual({
        name: "e0",
        netns: "ns1",
      });
      await sync.close(3000);
      expect(sync.storedKeys()).toEqual([]);
      await waitForValue(
        () => (reader.lookup("psct-sync", 31n, 5) === undefined ? true : undefined),
        { what: "entry removed" },
      );
    });
  });
});
