import { describe, expect, test } from "bun:test";
import type { RawFrame } from "@periscope/proto";
import {
  decodeRawFrame,
  encodeRawFrame,
  encodeTraceRecord,
  OBS_FROM_NETWORK,
  packedSize,
  rawFrameRecords,
} from "@periscope/wire";
import type { FramerClock } from "./clock.ts";
import {
  Framer,
  type FramerOptions,
  frameRecords,
  partitionOf,
  type SealedFrame,
} from "./framer.ts";

/** A clock the test moves by hand. */
function manualClock(): FramerClock & { advance(ms: number): void } {
  let now = 1000;
  return {
    advance: (ms) => {
      now += ms;
    },
    monotonicMs: () => now,
    realtimeNs: () => 1_700_000_000_000_000_000n + BigInt(now) * 1_000_000n,
    bootToRealtimeNs: () => 1_699_000_000_000_000_000n,
  };
}

function traceRecord(flowHash: number, ifindex = 7): Uint8Array {
  return encodeTraceRecord({
    type: 4,
    obsPoint: OBS_FROM_NETWORK,
    version: 1,
    flags: 0,
    cpu: 0,
    origLen: 60,
    tsBootNs: 123n,
    ifindex,
    mark: 0,
    flowHash,
    l3Proto: 0x0800,
    pktType: 0,
    netnsCookie: 0n,
    data: new Uint8Array(20),
  });
}

/** `recs` laid out as BPF ring buffer samples (8-byte header, padding to 8) after 16 bytes of junk. */
function ringRun(recs: Uint8Array[]): { ring: Uint8Array; start: number; end: number } {
  const start = 16;
  const end = recs.reduce((o, r) => o + packedSize(r.length), start);
  const ring = new Uint8Array(end + 16).fill(0xaa);
  let off = start;
  for (const r of recs) {
    new DataView(ring.buffer).setUint32(off, r.length, true);
    new DataView(ring.buffer).setUint32(off + 4, 0x1234, true);
    ring.set(r, off + 8);
    off += packedSize(r.length);
  }
  return { ring, start, end };
}

function setup(over: Partial<FramerOptions> = {}, accept: () => boolean = () => true) {
  const clock = manualClock();
  const frames: RawFrame[] = [];
  const sealed: SealedFrame[] = [];
  const framer = new Framer({
    nodeName: "node-a",
    bootId: "boot-1",
    partitions: 1,
    maxRecords: 3,
    maxDelayMs: 50,
    clock,
    sink: (f) => {
      if (!accept()) return false;
      // Tests look at the records as one list, whichever field carries them.
      const decoded = decodeRawFrame(f.bytes);
      decoded.records = rawFrameRecords(decoded).records;
      frames.push(decoded);
      sealed.push(f);
      return true;
    },
    ...over,
  });
  return { clock, frames, sealed, framer };
}

describe("framer", () => {
  test("framer - seals a frame when max records is reached", () => {
    const { frames, framer } = setup();
    framer.add(traceRecord(1));
    framer.add(traceRecord(2));
    expect(frames).toHaveLength(0);
    framer.add(traceRecord(3));
    expect(frames).toHaveLength(1);
    expect(frames[0]?.records).toHaveLength(3);
    expect(framer.pendingRecords).toBe(0);
  });

  test("framer - fills node, boot id, clock fields and round-trips through the wire", () => {
    const { frames, framer, clock } = setup();
    const recs = [traceRecord(1), traceRecord(2), traceRecord(3)];
    for (const r of recs) framer.add(r);
    const decoded = frames[0] as RawFrame;
    expect(decoded.nodeName).toBe("node-a");
    expect(decoded.bootId).toBe("boot-1");
    expect(decoded.seq).toBe(1n);
    expect(decoded.bootToRealtimeNs).toBe(clock.bootToRealtimeNs());
    expect(decoded.sealedUnixNs).toBe(clock.realtimeNs());
    expect(decoded.records).toEqual(recs);
  });

  test("framer - seq starts at 1 and increases per partition", () => {
    const { frames, framer } = setup({ partitions: 2, maxRecords: 1 });
    for (const h of [0, 1, 2, 3, 5]) framer.add(traceRecord(h));
    expect(frames.map((f) => [f.partition, f.seq])).toEqual([
      [0, 1n],
      [1, 1n],
      [0, 2n],
      [1, 2n],
      [1, 3n],
    ]);
  });

  test.each([
    { hash: 0, partitions: 1, want: 0 },
    { hash: 7, partitions: 1, want: 0 },
    { hash: 7, partitions: 4, want: 3 },
    { hash: 0xffffffff, partitions: 10, want: 0xffffffff % 10 },
    { hash: 12, partitions: 3, want: 0 },
  ])("framer - partition of flow_hash $hash over $partitions partitions is $want", (c) => {
    expect(partitionOf(traceRecord(c.hash), c.partitions)).toBe(c.want);
  });

  test.each([
    { name: "an empty record", bytes: new Uint8Array(0) },
    { name: "a record shorter than the flow hash", bytes: traceRecord(5).subarray(0, 34) },
    {
      name: "a record of another type",
      bytes: Uint8Array.from([9, ...traceRecord(5).subarray(1)]),
    },
  ])("framer - $name goes to partition 0", ({ bytes }) => {
    expect(partitionOf(bytes, 8)).toBe(0);
  });

  test("framer - records of one flow stay in one partition and order", () => {
    const { frames, framer } = setup({ partitions: 4, maxRecords: 2 });
    const a = traceRecord(6, 1);
    const b = traceRecord(6, 2);
    framer.add(a);
    framer.add(traceRecord(5));
    framer.add(b);
    expect(frames).toHaveLength(1);
    expect(frames[0]?.partition).toBe(2);
    expect(frames[0]?.records).toEqual([a, b]);
  });

  test("framer - seals on max delay measured from the first record", () => {
    const { frames, framer, clock } = setup({ maxRecords: 100, maxDelayMs: 50 });
    framer.add(traceRecord(1));
    clock.advance(30);
    framer.add(traceRecord(1));
    framer.tick();
    expect(frames).toHaveLength(0);
    clock.advance(19);
    framer.tick();
    expect(frames).toHaveLength(0);
    clock.advance(1);
    framer.tick();
    expect(frames).toHaveLength(1);
    expect(frames[0]?.records).toHaveLength(2);
    clock.advance(1000);
    framer.tick();
    expect(frames).toHaveLength(1);
  });

  test("framer - loss without records still yields a partition 0 frame after the delay", () => {
    const { frames, framer, clock } = setup({ partitions: 3 });
    framer.addKernelLost(0, 5n);
    framer.addLost(2n);
    framer.tick();
    expect(frames).toHaveLength(0);
    clock.advance(50);
    framer.tick();
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ partition: 0, seq: 1n, kernelLost: 5n, collectorLost: 2n });
    expect(frames[0]?.records).toHaveLength(0);
  });

  test("framer - loss deltas ride on partition 0 only and are reported once", () => {
    const { frames, framer } = setup({ partitions: 2, maxRecords: 1 });
    framer.addKernelLost(1, 3n);
    framer.add(traceRecord(1));
    framer.addKernelLost(1, 4n);
    framer.addLost(1n);
    framer.add(traceRecord(0));
    framer.add(traceRecord(0));
    expect(frames.map((f) => [f.partition, f.kernelLost, f.collectorLost])).toEqual([
      [1, 0n, 0n],
      [0, 7n, 1n],
      [0, 0n, 0n],
    ]);
  });

  test("framer - a refused frame does not use a seq and its records become collector loss", () => {
    let open = false;
    const { frames, framer, clock } = setup({ maxRecords: 2 }, () => open);
    framer.addKernelLost(3, 1n);
    framer.add(traceRecord(1));
    framer.add(traceRecord(1));
    expect(frames).toHaveLength(0);
    expect(framer.pendingLost).toEqual({ kernel: 1n, collector: 2n });
    open = true;
    clock.advance(50);
    framer.tick();
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ seq: 1n, kernelLost: 1n, collectorLost: 2n });
    expect(frames[0]?.kernelLosses.map((l) => [l.cpu, l.count])).toEqual([[3, 1n]]);
    expect(framer.pendingLost).toEqual({ kernel: 0n, collector: 0n });
  });

  test("framer - kernel loss is reported per CPU, summed in kernel_lost", () => {
    const { frames, sealed, framer, clock } = setup({ partitions: 2 });
    framer.addKernelLost(1, 4n);
    framer.addKernelLost(0, 2n);
    framer.addKernelLost(1, 1n);
    framer.addKernelLost(2, 0n);
    clock.advance(50);
    framer.tick();
    expect(frames).toHaveLength(1);
    expect(frames[0]?.kernelLost).toBe(7n);
    expect(frames[0]?.kernelLosses.map((l) => [l.cpu, l.count])).toEqual([
      [0, 2n],
      [1, 5n],
    ]);
    expect(frameRecords(sealed[0] as SealedFrame)).toBe(7n);
  });

  test("framer - frame bytes equal protobuf-es' encoding of the same frame", () => {
    const { sealed, framer } = setup({ maxRecords: 3 });
    framer.addKernelLost(1, 300n);
    framer.addLost(2n);
    for (const r of [traceRecord(1), traceRecord(0xffffffff), new Uint8Array(200).fill(9)]) {
      framer.add(r);
    }
    const first = sealed[0] as SealedFrame;
    expect(encodeRawFrame(decodeRawFrame(first.bytes))).toEqual(first.bytes);
    expect(decodeRawFrame(first.bytes)).toMatchObject({ packedCount: 3, kernelLost: 300n });
    const negative = setup({
      maxRecords: 1,
      clock: { ...manualClock(), bootToRealtimeNs: () => -5n },
    });
    negative.framer.add(traceRecord(1));
    expect(negative.frames[0]?.bootToRealtimeNs).toBe(-5n);
    const neg = negative.sealed[0] as SealedFrame;
    expect(encodeRawFrame(decodeRawFrame(neg.bytes))).toEqual(neg.bytes);
  });

  test("framer - addFrom copies a record out of a larger buffer", () => {
    const { frames, framer } = setup({ maxRecords: 2 });
    const a = traceRecord(1, 5);
    const b = traceRecord(2, 6);
    const ring = new Uint8Array(8 + a.length + 8 + b.length);
    ring.set(a, 8);
    ring.set(b, 16 + a.length);
    framer.addFrom(ring, 8, a.length);
    ring.fill(0, 0, 8 + a.length);
    framer.addFrom(ring, 16 + a.length, b.length);
    expect(frames[0]?.records).toEqual([a, b]);
  });

  test("framer - seals before a record would take the frame past max bytes", () => {
    const { frames, framer } = setup({ maxRecords: 100, maxBytes: 300 });
    const rec = traceRecord(1);
    const perRecord = packedSize(rec.length);
    const fit = Math.floor(300 / perRecord);
    for (let i = 0; i < fit + 1; i++) framer.add(rec);
    expect(frames).toHaveLength(1);
    expect(frames[0]?.records).toHaveLength(fit);
    expect(framer.pendingRecords).toBe(1);
    const big = new Uint8Array(1000);
    framer.add(big);
    expect(frames).toHaveLength(2);
    framer.flush();
    expect(frames[2]?.records).toEqual([big]);
  });

  test.each([
    { name: "fits one frame", maxRecords: 10, maxBytes: 4096, sizes: [5] },
    { name: "cut by max records", maxRecords: 2, maxBytes: 4096, sizes: [2, 2, 1] },
    { name: "cut by max bytes", maxRecords: 100, maxBytes: 200, sizes: [2, 2, 1] },
  ])("framer - a run of ring samples is copied whole and cut where a frame is full: $name", (c) => {
    const { frames, framer } = setup({ maxRecords: c.maxRecords, maxBytes: c.maxBytes });
    const recs = [1, 2, 3, 4, 5].map((h) => traceRecord(h, h));
    const { ring, start, end } = ringRun(recs);
    framer.addRun(ring, start, end, recs.length);
    framer.flush();
    expect(frames.map((f) => f.records.length)).toEqual([...c.sizes]);
    expect(frames.flatMap((f) => f.records)).toEqual(recs);
    expect(frames.map((f) => f.seq)).toEqual(c.sizes.map((_, i) => BigInt(i + 1)));
  });

  test("framer - a run goes record by record to its partitions when there are several", () => {
    const { frames, framer } = setup({ partitions: 2, maxRecords: 100 });
    const recs = [1, 2, 3, 4].map((h) => traceRecord(h));
    const { ring, start, end } = ringRun(recs);
    framer.addRun(ring, start, end, recs.length);
    framer.flush();
    const byPartition = new Map(frames.map((f) => [f.partition, f.records]));
    expect(byPartition.get(0)).toEqual([recs[1], recs[3]] as Uint8Array[]);
    expect(byPartition.get(1)).toEqual([recs[0], recs[2]] as Uint8Array[]);
  });

  test("framer - flush seals every open frame", () => {
    const { frames, framer } = setup({ partitions: 3, maxRecords: 100 });
    framer.add(traceRecord(0));
    framer.add(traceRecord(2));
    framer.flush();
    expect(frames.map((f) => f.partition).sort()).toEqual([0, 2]);
    framer.flush();
    expect(frames).toHaveLength(2);
  });

  test.each([{ partitions: 0 }, { partitions: 1.5 }])(
    "framer - rejects partitions $partitions",
    ({ partitions }) => {
      expect(() => setup({ partitions })).toThrow(RangeError);
    },
  );
});
