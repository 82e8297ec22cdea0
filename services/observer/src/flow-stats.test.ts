import { describe, expect, test } from "bun:test";
import { FlowStats, PORT_SIDE, type StatRecord } from "./flow-stats.ts";

const NOW = 1_800_000_000_000;

function rec(init: Partial<StatRecord> = {}): StatRecord {
  return {
    node: "n1",
    src: "10.0.0.1",
    dst: "10.0.0.2",
    protocol: 6,
    srcPort: 40000,
    dstPort: 80,
    bytes: 100n,
    packets: 2n,
    firstMs: NOW - 5_000,
    lastMs: NOW - 1_000,
    ...init,
  };
}

describe("FlowStats", () => {
  test("a record counts under its destination port and under its source port", async () => {
    const s = new FlowStats();
    s.add(rec(), NOW);
    s.add(rec({ bytes: 50n, packets: 1n }), NOW);
    const q = await s.query({}, NOW);
    const dst = q.entries.find((e) => e.side === PORT_SIDE.destination);
    const src = q.entries.find((e) => e.side === PORT_SIDE.source);
    expect(dst).toMatchObject({ port: 80, bytes: 150n, packets: 3n, records: 2, nodes: 1 });
    expect(src).toMatchObject({ port: 40000, bytes: 150n, packets: 3n, records: 2 });
    expect(q.entries).toHaveLength(2);
    expect(s.entries).toBe(2);
  });

  test("two nodes reporting the same traffic: the larger node sum, both nodes counted", async () => {
    const s = new FlowStats();
    s.add(rec({ node: "a", bytes: 1000n, packets: 10n }), NOW);
    s.add(rec({ node: "b", bytes: 990n, packets: 10n }), NOW);
    s.add(rec({ node: "b", bytes: 20n, packets: 1n }), NOW);
    const e = (await s.query({}, NOW)).entries.find((x) => x.side === PORT_SIDE.destination);
    expect(e).toMatchObject({ bytes: 1010n, packets: 11n, nodes: 2, records: 3 });
  });

  test("since/until select buckets; the window is rounded out to bucket edges", async () => {
    const s = new FlowStats({ bucketMs: 10_000 });
    const base = NOW - 60_000; // a multiple of 10 s
    s.add(rec({ lastMs: base + 1_000, bytes: 1n }), NOW);
    s.add(rec({ lastMs: base + 15_000, bytes: 10n }), NOW);
    s.add(rec({ lastMs: base + 35_000, bytes: 100n }), NOW);
    const bytesOf = (q: Awaited<ReturnType<FlowStats["query"]>>) =>
      q.entries.find((e) => e.side === PORT_SIDE.destination)?.bytes ?? 0n;
    expect(bytesOf(await s.query({ sinceMs: base + 10_000, untilMs: base + 20_000 }, NOW))).toBe(
      10n,
    );
    const q = await s.query({ sinceMs: base + 12_000, untilMs: base + 36_000 }, NOW);
    expect(bytesOf(q)).toBe(110n);
    expect(q.coveredSinceMs).toBe(base + 10_000);
    expect(q.coveredUntilMs).toBe(base + 40_000);
    expect(bytesOf(await s.query({}, NOW))).toBe(111n);
    // earlier than anything kept: covered from the oldest bucket
    expect((await s.query({ sinceMs: base - 600_000 }, NOW)).coveredSinceMs).toBe(base);
    expect((await s.query({ sinceMs: base + 40_000 }, NOW)).entries).toHaveLength(0);
  });

  test("the entry cap evicts the oldest bucket, counted and reported in the window", async () => {
    const s = new FlowStats({ bucketMs: 1_000, maxEntries: 4 });
    s.add(rec({ lastMs: NOW - 5_000, srcPort: 1 }), NOW);
    s.add(rec({ lastMs: NOW - 4_000, srcPort: 2 }), NOW);
    expect(s.entries).toBe(4);
    expect(s.add(rec({ lastMs: NOW - 3_000, srcPort: 3 }), NOW)).toBe("counted");
    expect(s.entries).toBe(4);
    expect(s.counters).toMatchObject({ evictedBuckets: 1, evictedEntries: 2, dropped: 0 });
    const q = await s.query({ sinceMs: NOW - 10_000 }, NOW);
    expect(q.loss.evictedUntilMs).toBe(NOW - 4_000);
    expect(q.entries.map((e) => e.port).sort((a, b) => a - b)).toEqual([2, 3, 80]);
    // a window after the evicted bucket is complete
    expect((await s.query({ sinceMs: NOW - 4_000 }, NOW)).loss.evictedUntilMs).toBeUndefined();
  });

  test("a record whose bucket alone fills the cap is dropped and counted in its window", async () => {
    const s = new FlowStats({ bucketMs: 1_000, maxEntries: 2 });
    s.add(rec({ srcPort: 1 }), NOW);
    expect(s.add(rec({ srcPort: 2 }), NOW)).toBe("dropped");
    // an existing key still adds up without a new entry
    expect(s.add(rec({ srcPort: 1 }), NOW)).toBe("counted");
    const q = await s.query({}, NOW);
    expect(q.loss.dropped).toBe(1);
    expect(q.entries.find((e) => e.port === 80)?.bytes).toBe(200n);
    expect(s.counters.dropped).toBe(1);
  });

  test("buckets expire after the retention; older records are counted as expired", async () => {
    const s = new FlowStats({ bucketMs: 1_000, retentionMs: 10_000 });
    s.add(rec({ lastMs: NOW - 9_500 }), NOW);
    expect(s.add(rec({ lastMs: NOW - 20_000 }), NOW)).toBe("expired");
    expect(s.counters.expired).toBe(1);
    expect(s.entries).toBe(2);
    expect((await s.query({}, NOW + 2_000)).entries).toHaveLength(0);
    expect(s.entries).toBe(0);
  });

  test("collector losses and malformed input are summed per window", async () => {
    const s = new FlowStats({ bucketMs: 1_000 });
    s.addCollectorLoss(5n, 2n, NOW - 3_000);
    s.addCollectorLoss(1n, 0n, NOW - 500);
    s.addMalformed(3, NOW - 500);
    const all = (await s.query({}, NOW)).loss;
    expect(all).toMatchObject({
      collectorLostPackets: 6n,
      collectorDroppedRecords: 2n,
      malformed: 3,
    });
    const recent = (await s.query({ sinceMs: NOW - 1_000 }, NOW)).loss;
    expect(recent).toMatchObject({ collectorLostPackets: 1n, collectorDroppedRecords: 0n });
  });

  test("largest first; limit keeps the largest and says how many were left out", async () => {
    const s = new FlowStats();
    for (let i = 1; i <= 5; i++) s.add(rec({ dst: `10.0.1.${i}`, bytes: BigInt(i * 10) }), NOW);
    const q = await s.query({ limit: 3 }, NOW);
    expect(q.entries.map((e) => e.bytes)).toEqual([50n, 50n, 40n]);
    expect(q.omitted).toBe(7);
  });

  test("ips keeps only sums between the given addresses", async () => {
    const s = new FlowStats();
    s.add(rec(), NOW);
    s.add(rec({ src: "10.0.0.3" }), NOW);
    s.add(rec({ dst: "10.0.0.4" }), NOW);
    const q = await s.query({ ips: new Set(["10.0.0.1", "10.0.0.2"]) }, NOW);
    expect(q.entries).toHaveLength(2);
    expect(q.entries.every((e) => e.src === "10.0.0.1" && e.dst === "10.0.0.2")).toBe(true);
    expect((await s.query({ ips: new Set() }, NOW)).entries).toHaveLength(6);
  });

  test("bad options are refused", async () => {
    expect(() => new FlowStats({ maxEntries: 1 })).toThrow(/maxEntries/);
    expect(() => new FlowStats({ bucketMs: 0 })).toThrow(/bucketMs/);
  });
});
