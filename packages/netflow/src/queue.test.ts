import { describe, expect, test } from "bun:test";
import { waitFor } from "@periscope/testing";
import { sampleNetflowRecord } from "../test-helpers.ts";
import type { NetflowExporter } from "./exporter.ts";
import { type NetflowDrop, NetflowExportQueue } from "./queue.ts";
import type { NetflowRecord } from "./record.ts";

/** An exporter whose export calls finish only when the test says so. */
class GatedExporter implements NetflowExporter {
  readonly received: NetflowRecord[] = [];
  readonly batches: number[] = [];
  closed = false;
  #open: (() => void)[] = [];
  #gate = true;
  constructor(
    readonly name: string,
    readonly fail = false,
  ) {}
  release(): void {
    this.#gate = false;
    for (const r of this.#open.splice(0)) r();
  }
  async export(records: readonly NetflowRecord[]): Promise<void> {
    this.batches.push(records.length);
    if (this.#gate) await new Promise<void>((r) => this.#open.push(r));
    if (this.fail) throw new Error("collector unreachable");
    this.received.push(...records);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

function records(n: number, from = 0): NetflowRecord[] {
  return Array.from({ length: n }, (_, i) => sampleNetflowRecord({ srcPort: from + i }));
}

describe("netflow export queue", () => {
  test("netflow export queue - a slow exporter overflows its lane only; every record is exported or counted", async () => {
    const slow = new GatedExporter("slow");
    const fast = new GatedExporter("fast");
    fast.release();
    const drops: NetflowDrop[] = [];
    const q = new NetflowExportQueue({
      exporters: [slow, fast],
      capacity: 100,
      batchSize: 30,
      onDrop: (d) => drops.push(d),
    });
    // The first 10 leave the ring at once into the stuck export call; 100 more fit.
    // Pushed in chunks the fast exporter takes before the next arrives.
    for (let from = 0; from < 500; from += from === 0 ? 10 : 70) {
      q.push(records(from === 0 ? 10 : 70, from));
      await waitFor(() => q.stats()[1]?.exported === Math.min(500, from + (from === 0 ? 10 : 70)));
    }
    expect(drops.every((d) => d.exporter === "slow" && d.kind === "overflow")).toBe(true);
    expect(drops.reduce((n, d) => n + d.count, 0)).toBe(390);
    expect(drops[0]?.reason).toMatch(/slow is behind.*100 records/);
    slow.release();
    await q.flush();
    expect(fast.received.map((r) => r.srcPort)).toEqual(records(500).map((r) => r.srcPort));
    const ports = slow.received.map((r) => r.srcPort);
    expect(ports).toEqual([...Array(110).keys()]);
    expect(q.stats()).toEqual([
      { exporter: "slow", queued: 0, exported: 110, dropped: 390 },
      { exporter: "fast", queued: 0, exported: 500, dropped: 0 },
    ]);
    expect(slow.batches.every((n) => n <= 30)).toBe(true);
  });

  test("netflow export queue - push returns at once while the exporter is stuck", () => {
    const stuck = new GatedExporter("stuck");
    const q = new NetflowExportQueue({ exporters: [stuck], capacity: 1000 });
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) q.push(records(100, i * 100));
    expect(performance.now() - t0).toBeLessThan(1000);
    const s = q.stats()[0];
    expect((s?.queued ?? 0) + (s?.dropped ?? 0) + (stuck.batches[0] ?? 0)).toBe(10_000);
  });

  test("netflow export queue - a failing exporter's batches are counted as export-failed", async () => {
    const bad = new GatedExporter("bad", true);
    bad.release();
    const drops: NetflowDrop[] = [];
    const q = new NetflowExportQueue({
      exporters: [bad],
      batchSize: 7,
      onDrop: (d) => drops.push(d),
    });
    q.push(records(20));
    await q.flush();
    expect(drops.map((d) => [d.kind, d.count])).toEqual([
      ["export-failed", 7],
      ["export-failed", 7],
      ["export-failed", 6],
    ]);
    expect(drops[0]?.reason).toBe("exporter bad failed: collector unreachable");
    expect(q.stats()[0]).toEqual({ exporter: "bad", queued: 0, exported: 0, dropped: 20 });
  });

  test.each([
    ["short address", { srcAddr: new Uint8Array(3) }, /srcAddr has 3 bytes, IPv4 needs 4/],
    ["port", { dstPort: 70000 }, /dstPort 70000/],
    ["negative bytes", { bytes: -1n }, /bytes -1/],
    ["time order", { lastSeenMs: 1 }, /lastSeenMs 1 is before/],
    ["mac", { dstMac: new Uint8Array(0) }, /dstMac has 0 bytes/],
  ])(
    "netflow export queue - an invalid record (%s) is counted, never exported",
    async (_, over, msg) => {
      const ex = new GatedExporter("x");
      ex.release();
      const drops: NetflowDrop[] = [];
      const q = new NetflowExportQueue({ exporters: [ex], onDrop: (d) => drops.push(d) });
      expect(q.push([sampleNetflowRecord(over), sampleNetflowRecord()])).toBe(1);
      await q.flush();
      expect(ex.received.length).toBe(1);
      expect(q.invalid).toBe(1);
      expect(drops.length).toBe(1);
      expect(drops[0]?.kind).toBe("invalid");
      expect(drops[0]?.exporter).toBeUndefined();
      expect(drops[0]?.reason).toMatch(msg);
    },
  );

  test("netflow export queue - close exports what is queued, closes exporters, counts later pushes", async () => {
    const ex = new GatedExporter("x");
    const drops: NetflowDrop[] = [];
    const q = new NetflowExportQueue({ exporters: [ex], onDrop: (d) => drops.push(d) });
    q.push(records(50));
    const closing = q.close();
    q.push(records(5));
    ex.release();
    await closing;
    expect(ex.received.length).toBe(50);
    expect(ex.closed).toBe(true);
    expect(drops.map((d) => [d.kind, d.count])).toEqual([["closed", 5]]);
  });

  test("netflow export queue - drops are summarised in the log", async () => {
    const lines: { obj: Record<string, unknown>; msg: string }[] = [];
    const log = {
      warn: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }),
    } as unknown as import("@periscope/telemetry").Logger;
    const stuck = new GatedExporter("stuck");
    const q = new NetflowExportQueue({
      exporters: [stuck],
      capacity: 1,
      log,
      logIntervalMs: 60_000,
    });
    // One record goes into the stuck export call, one waits in the ring: 2 + 3 dropped.
    q.push(records(3));
    q.push(records(4));
    expect(lines.length).toBe(1);
    expect(lines[0]?.msg).toMatch(/^dropped 2 flow records: exporter stuck is behind/);
    stuck.release();
    await q.close();
    expect(lines.length).toBe(2);
    expect(lines[1]?.msg).toMatch(/^dropped 3 flow records in the last/);
  });

  test("netflow export queue - two exporters with one name are refused", () => {
    expect(
      () => new NetflowExportQueue({ exporters: [new GatedExporter("a"), new GatedExporter("a")] }),
    ).toThrow(/two flow exporters are named "a"/);
  });
});
