import { describe, expect, test } from "bun:test";
import type { RawFrame } from "@periscope/proto";
import { decodeRawFrame, packedSize, rawFrameRecords } from "@periscope/wire";
import type { FramerClock } from "./clock.ts";
import { DrainLoop, type RecordSink, type RecordSource } from "./drain.ts";
import { Framer } from "./framer.ts";
import { PublishQueue } from "./publisher.ts";

/** A ring buffer stand-in: records the test pushes, per-CPU loss counters it sets, errors it injects. */
class QueueSource implements RecordSource {
  readonly records: Uint8Array[] = [];
  lost: bigint[] = [0n, 0n];
  failNext = false;
  drainInto(sink: RecordSink, max = Number.POSITIVE_INFINITY): number {
    if (this.failNext) {
      this.failNext = false;
      throw new Error("ring buffer poll failed");
    }
    const n = Math.min(max, this.records.length);
    const taken = this.records.splice(0, n);
    // Hand out views into a buffer laid out like the ring and overwritten afterwards.
    const ring = new Uint8Array(taken.reduce((o, r) => o + packedSize(r.length), 0));
    let off = 0;
    for (const r of taken) {
      new DataView(ring.buffer).setUint32(off, r.length, true);
      ring.set(r, off + 8);
      off += packedSize(r.length);
    }
    if (n > 0) sink.addRun?.(ring, 0, ring.length, n);
    ring.fill(0xee);
    return n;
  }
  readKernelLostPerCpu(): bigint[] {
    return [...this.lost];
  }
}

function setup(maxRecords = 3) {
  let now = 0;
  const clock: FramerClock = {
    monotonicMs: () => now,
    realtimeNs: () => 1_000n,
    bootToRealtimeNs: () => 0n,
  };
  const stored: RawFrame[] = [];
  const queue = new PublishQueue({
    transport: {
      publish: async (_subject, payload) => {
        const frame = decodeRawFrame(payload);
        frame.records = rawFrameRecords(frame).records;
        stored.push(frame);
      },
      connected: () => true,
    },
    subjectFor: String,
    maxFrames: 100,
  });
  const framer = new Framer({
    nodeName: "n",
    bootId: "b",
    partitions: 1,
    maxRecords,
    maxDelayMs: 50,
    clock,
    sink: (f) => queue.offer(f),
  });
  const source = new QueueSource();
  const errors: unknown[] = [];
  const kernel: [number, bigint][] = [];
  const read: number[] = [];
  const loop = new DrainLoop({
    source,
    framer,
    queue,
    batchMax: 4,
    lostPollMs: 100,
    monotonicMs: () => now,
    onRead: (n) => read.push(n),
    onKernelLost: (d, cpu) => kernel.push([cpu, d]),
    onError: (e) => errors.push(e),
  });
  const settle = () => Bun.sleep(0);
  return {
    loop,
    source,
    stored,
    errors,
    kernel,
    read,
    settle,
    advance: (ms: number): void => {
      now += ms;
    },
  };
}

const rec = (i: number): Uint8Array => new Uint8Array([i]);

describe("drain loop", () => {
  test("drain - a step takes at most batchMax records, seals full frames and publishes them", async () => {
    const t = setup(3);
    t.source.records.push(rec(1), rec(2), rec(3), rec(4), rec(5));
    expect(t.loop.step()).toBe(4);
    await t.settle();
    expect(t.stored.map((f) => f.records.length)).toEqual([3]);
    expect(t.loop.step()).toBe(1);
    expect(t.read).toEqual([4, 1]);
    t.advance(50);
    t.loop.step();
    await t.settle();
    expect(t.stored.map((f) => [f.seq, f.records.length, f.recordsBefore])).toEqual([
      [1n, 3, 0n],
      [2n, 2, 3n],
    ]);
  });

  test("drain - kernel loss is read every lostPollMs and reported once per CPU, in the next frame", async () => {
    const t = setup(10);
    t.source.lost = [2n, 0n];
    t.loop.step();
    t.source.lost = [5n, 4n];
    t.loop.step(); // within lostPollMs: not read yet
    expect(t.kernel).toEqual([[0, 2n]]);
    t.advance(100);
    t.loop.step();
    expect(t.kernel).toEqual([
      [0, 2n],
      [0, 3n],
      [1, 4n],
    ]);
    t.advance(50);
    t.loop.step();
    await t.settle();
    expect(t.stored.map((f) => [f.kernelLost, f.records.length])).toEqual([[9n, 0]]);
    expect(t.stored[0]?.kernelLosses.map((l) => [l.cpu, l.count])).toEqual([
      [0, 5n],
      [1, 4n],
    ]);
  });

  test("drain - a failing poll is reported and the next step goes on", () => {
    const t = setup();
    t.source.records.push(rec(1));
    t.source.failNext = true;
    expect(t.loop.step()).toBe(0);
    expect(t.errors).toHaveLength(1);
    expect(t.loop.step()).toBe(1);
  });

  test("drain - stop drains everything left, seals open frames and publishes them", async () => {
    const t = setup(100);
    t.loop.start();
    expect(t.loop.running).toBe(true);
    t.source.records.push(...Array.from({ length: 10 }, (_, i) => rec(i)));
    t.loop.stop();
    expect(t.loop.running).toBe(false);
    await t.settle();
    expect(t.stored.flatMap((f) => f.records.map((r) => r[0]))).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    ]);
    expect(t.source.records).toHaveLength(0);
  });
});
