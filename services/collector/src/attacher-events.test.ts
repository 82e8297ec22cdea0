import { describe, expect, test } from "bun:test";
import { createLogger, createMetrics } from "@periscope/telemetry";
import {
  type AttachableProgram,
  type AttachedDevice,
  type DeviceChange,
  InterfaceAttacher,
} from "./attacher.ts";
import type { InterfaceTarget } from "./config.ts";
import { parseInterfaces } from "./config.ts";
import type { DeviceLister, NetDevice } from "./discovery.ts";
import { filterPriorityOf } from "./filter-priority.ts";
import { CollectorMetrics } from "./metrics.ts";

/** A program that records what it was asked to do. */
class FakeProgram implements AttachableProgram {
  readonly calls: string[] = [];
  attach(t: InterfaceTarget): void {
    this.calls.push(`attach ${t.netns ?? ""}/${t.ifname}`);
  }
  detach(t: InterfaceTarget): void {
    this.calls.push(`detach ${t.netns ?? ""}/${t.ifname}`);
  }
}

/** Devices per namespace, changed by the test; `gate` holds listings back while set. */
class FakeLister implements DeviceLister {
  readonly devs = new Map<string, NetDevice[]>();
  gate: Promise<void> | undefined;
  /** Called when a listing starts (before the gate). */
  onList: (() => void) | undefined;
  async devices(netns: string | undefined): Promise<NetDevice[] | undefined> {
    this.onList?.();
    await this.gate;
    return this.devs.get(netns ?? "");
  }
  namedNetns(): string[] {
    return [...this.devs.keys()].filter((n) => n !== "");
  }
}

const dev = (ifname: string, ifindex: number, loopback = false): NetDevice => ({
  ifname,
  ifindex,
  loopback,
});
const change = (kind: "new" | "del", ifname: string, ifindex: number): DeviceChange => ({
  kind,
  ...dev(ifname, ifindex),
});

function setup(interfaces: string) {
  const program = new FakeProgram();
  const lister = new FakeLister();
  const metrics = new CollectorMetrics(createMetrics("collector"));
  const events: string[] = [];
  const attacher = new InterfaceAttacher({
    patterns: parseInterfaces(interfaces),
    program,
    attachRetryMs: 60_000,
    metrics,
    log: createLogger("collector", "silent"),
    lister,
    cookieOf: (netns) => (netns === undefined ? 1n : BigInt(netns.length)),
  });
  attacher.listen({
    onAttach: (d: AttachedDevice) => events.push(`+${d.name}`),
    onDetach: (d, reason) => events.push(`-${d.name} ${reason}`),
  });
  const missed = async (): Promise<number> => {
    const text = await metrics.registry.metrics();
    return Number(/periscope_collector_discovery_missed_total (\d+)/.exec(text)?.[1] ?? -1);
  };
  return { program, lister, attacher, events, missed };
}

describe("attacher notifications", () => {
  test("attacher - a new matching device is attached at once, others and loopback are not", () => {
    const { attacher, events } = setup("pod*/eth*");
    attacher.applyChanges("pod1", [change("new", "eth0", 2), change("new", "veth9", 3)]);
    attacher.applyChanges("pod1", [{ kind: "new", ...dev("eth-lo", 1, true) }]);
    attacher.applyChanges("other", [change("new", "eth0", 2)]);
    expect(attacher.attached().map((d) => d.name)).toEqual(["pod1/eth0"]);
    expect(events).toEqual(["+pod1/eth0"]);
  });

  test("attacher - a change of a known device (same ifindex) attaches nothing again", () => {
    const { attacher, program } = setup("pod*/eth*");
    attacher.applyChanges("pod1", [change("new", "eth0", 2), change("new", "eth0", 2)]);
    expect(program.calls).toEqual(["attach pod1/eth0"]);
  });

  test.each<{ what: string; later: DeviceChange; want: string[] }>([
    { what: "removed", later: change("del", "eth0", 2), want: ["-pod1/eth0 vanished"] },
    { what: "removed with another ifindex", later: change("del", "eth0", 7), want: [] },
    {
      what: "recreated",
      later: change("new", "eth0", 7),
      want: ["-pod1/eth0 recreated", "+pod1/eth0"],
    },
    {
      what: "renamed",
      later: change("new", "eth5", 2),
      want: ["-pod1/eth0 vanished", "+pod1/eth5"],
    },
  ])("attacher - a device $what", ({ later, want }) => {
    const { attacher, events } = setup("pod*/eth*");
    attacher.applyChanges("pod1", [change("new", "eth0", 2)]);
    events.length = 0;
    attacher.applyChanges("pod1", [later]);
    expect(events).toEqual(want);
  });

  test("attacher - a namespace that goes takes its devices with it, only its own", () => {
    const { attacher, events } = setup("pod*/eth*");
    attacher.applyChanges("pod1", [change("new", "eth0", 2), change("new", "eth1", 3)]);
    attacher.applyChanges("pod2", [change("new", "eth0", 2)]);
    events.length = 0;
    attacher.forgetScope("pod1");
    expect(events).toEqual(["-pod1/eth0 vanished", "-pod1/eth1 vanished"]);
    expect(attacher.attached().map((d) => d.name)).toEqual(["pod2/eth0"]);
  });

  test("attacher - a literal device that was missing is attached when it appears, without waiting for the retry", async () => {
    const { attacher, lister } = setup("pod1/eth0");
    lister.devs.set("pod1", []);
    await attacher.scan();
    expect(attacher.failingScopes()).toEqual(new Set(["pod1"]));
    attacher.applyChanges("pod1", [change("new", "eth0", 4)]);
    expect(attacher.attached().map((d) => d.name)).toEqual(["pod1/eth0"]);
    expect(attacher.failingScopes()).toEqual(new Set());
  });

  test("attacher - the safety-net rescan counts what notifications missed, and only that", async () => {
    const { attacher, lister, missed } = setup("pod*/eth*");
    lister.devs.set("pod1", [dev("eth0", 2)]);
    await attacher.scan();
    lister.devs.set("pod1", [dev("eth0", 2), dev("eth1", 3)]);
    attacher.applyChanges("pod1", [change("new", "eth1", 3)]);
    await attacher.scan({ countMissed: true });
    expect(await missed()).toBe(0);
    lister.devs.set("pod1", [dev("eth1", 3)]);
    lister.devs.set("pod2", [dev("eth0", 2)]);
    await attacher.scan({ countMissed: true });
    expect(
      attacher
        .attached()
        .map((d) => d.name)
        .sort(),
    ).toEqual(["pod1/eth1", "pod2/eth0"]);
    expect(await missed()).toBe(2); // pod1/eth0 detached, pod2/eth0 attached
  });

  test("attacher - a scan leaves alone a namespace notified while it was listing", async () => {
    const { attacher, lister } = setup("pod*/eth*");
    lister.devs.set("pod1", []);
    let open: () => void = () => {};
    lister.gate = new Promise((r) => {
      open = r;
    });
    const listing = new Promise<void>((r) => {
      lister.onList = r;
    });
    const scan = attacher.scan();
    await listing;
    attacher.applyChanges("pod1", [change("new", "eth0", 2)]); // newer than the listing
    lister.gate = undefined;
    open();
    await scan;
    expect(attacher.attached().map((d) => d.name)).toEqual(["pod1/eth0"]);
  });

  test("attacher - a node's filter priority is stable, in its range and differs between nodes", () => {
    const a = filterPriorityOf("node-a");
    expect(filterPriorityOf("node-a")).toBe(a);
    expect(a).toBeGreaterThanOrEqual(0x8000);
    expect(a).toBeLessThan(0xc000);
    expect(filterPriorityOf("node-b")).not.toBe(a);
  });
});
