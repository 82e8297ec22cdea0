import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Bus, connectBus, openLeaseBucket } from "@periscope/bus";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { holderId, type OwnershipChange, PartitionOwnership } from "./ownership.ts";

const log = createLogger("ownership-test", "silent");
const TTL = 900;
const PARTITIONS = 16;

interface Member {
  readonly name: string;
  readonly bus: Bus;
  readonly own: PartitionOwnership;
  /** Partitions whose reader runs (start called, stop not yet). */
  readonly reading: Set<number>;
  readonly changes: OwnershipChange[];
}

describe("partition ownership", () => {
  let nats: LocalNats;
  const members: Member[] = [];
  const overlaps: string[] = [];

  beforeAll(async () => {
    nats = await startLocalNats({});
  });
  afterAll(async () => {
    for (const m of members) {
      await m.own.stop().catch(() => {});
      await m.bus.close();
    }
    await nats?.stop();
  });

  async function join(name: string): Promise<Member> {
    const bus = await connectBus({ url: nats.url, name, log });
    const kv = await openLeaseBucket(bus, TTL, "ownership-test");
    const reading = new Set<number>();
    const changes: OwnershipChange[] = [];
    const own = new PartitionOwnership({
      kv,
      holder: holderId(name),
      partitions: PARTITIONS,
      ttlMs: TTL,
      log,
      async start(p) {
        // One reader per partition among connected members, at every moment.
        for (const m of members) {
          if (!m.bus.nc.isClosed() && m.reading.has(p)) overlaps.push(`${p}: ${m.name}+${name}`);
        }
        reading.add(p);
      },
      async stop(p) {
        reading.delete(p);
      },
      changed: (c) => changes.push(c),
    });
    const m = { name, bus, own, reading, changes };
    members.push(m);
    await own.start();
    return m;
  }

  const counts = (ms: Member[]) => ms.map((m) => m.own.owned().length).sort((a, b) => b - a);
  const disjointAndComplete = (ms: Member[]) => {
    const all = ms.flatMap((m) => m.own.owned());
    return all.length === PARTITIONS && new Set(all).size === PARTITIONS;
  };

  test("ownership - a lone member owns all; newcomers get a fair share within seconds; a dead member's partitions move", async () => {
    const a = await join("a");
    expect(a.own.owned()).toHaveLength(PARTITIONS);
    expect([...a.reading].sort((x, y) => x - y)).toEqual(a.own.owned());

    let t0 = Date.now();
    const b = await join("b");
    // start() resolves once the newcomer holds its share.
    expect(b.own.balanced).toBe(true);
    await waitFor(async () => counts([a, b]).join() === "8,8" && disjointAndComplete([a, b]), {
      timeoutMs: 5000,
      intervalMs: 20,
      what: "two members at 8 each",
    });
    console.log(`[ownership] second member balanced in ${Date.now() - t0} ms`);

    t0 = Date.now();
    const c = await join("c");
    expect(c.own.balanced).toBe(true);
    await waitFor(
      async () => counts([a, b, c]).join() === "6,5,5" && disjointAndComplete([a, b, c]),
      {
        timeoutMs: 5000,
        intervalMs: 20,
        what: "three members at 6/5/5",
      },
    );
    console.log(`[ownership] third member balanced in ${Date.now() - t0} ms`);
    expect(a.changes.filter((x) => x === "released").length).toBeGreaterThan(0);

    // b is cut off without releasing anything (its connection dies, as with kill -9).
    const orphaned = b.own.owned();
    expect(orphaned.length).toBeGreaterThan(0);
    t0 = Date.now();
    await b.bus.nc.close();
    await waitFor(
      async () =>
        counts([a, c]).join() === "8,8" &&
        orphaned.every((p) => a.own.owned().includes(p) || c.own.owned().includes(p)),
      { timeoutMs: 6000, intervalMs: 20, what: "the dead member's partitions moved" },
    );
    const moveMs = Date.now() - t0;
    console.log(`[ownership] partitions of a dead member moved in ${moveMs} ms (TTL ${TTL} ms)`);
    expect(moveMs).toBeGreaterThanOrEqual(TTL - 200);
    // b finds out on its own that it no longer holds them, and stops reading.
    await waitFor(async () => b.reading.size === 0, {
      timeoutMs: 4000,
      what: "cut-off member stops reading",
    });
    expect(b.changes.filter((x) => x === "lost")).toHaveLength(orphaned.length);
    expect(orphaned.some((p) => b.own.holds(p))).toBe(false);
    await b.own.stop();
    members.splice(members.indexOf(b), 1);

    // A graceful stop hands everything over at once.
    t0 = Date.now();
    await c.own.stop();
    members.splice(members.indexOf(c), 1);
    await waitFor(async () => a.own.owned().length === PARTITIONS, {
      timeoutMs: 5000,
      intervalMs: 20,
      what: "last member owns all",
    });
    console.log(`[ownership] graceful leave handed over in ${Date.now() - t0} ms`);
    expect(overlaps).toEqual([]);
  }, 30_000);
});
