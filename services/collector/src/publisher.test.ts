import { describe, expect, test } from "bun:test";
import type { RawFrame } from "@periscope/proto";
import { createRawFrame, decodeRawFrame } from "@periscope/wire";
import { type FrameTransport, PublishQueue } from "./publisher.ts";

/** An in-memory transport whose connectivity, flush and failures the test controls. */
class MemoryTransport implements FrameTransport {
  up = true;
  failPublish = false;
  readonly sent: { subject: string; frame: RawFrame }[] = [];
  readonly pendingFlushes: (() => void)[] = [];
  publish(subject: string, payload: Uint8Array): void {
    if (this.failPublish) throw new Error("connection closed");
    this.sent.push({ subject, frame: decodeRawFrame(payload) });
  }
  flush(): Promise<void> {
    return new Promise<void>((resolve) => this.pendingFlushes.push(resolve));
  }
  connected(): boolean {
    return this.up;
  }
}
const memoryTransport = (): MemoryTransport => new MemoryTransport();

function frame(seq: number, partition = 0, records = 1): RawFrame {
  return createRawFrame({
    nodeName: "n",
    bootId: "b",
    seq: BigInt(seq),
    partition,
    records: Array.from({ length: records }, () => new Uint8Array(48)),
  });
}

describe("publish queue", () => {
  test("publish queue - publishes in order on the partition's subject", () => {
    const t = memoryTransport();
    const published: number[] = [];
    const q = new PublishQueue({
      transport: t,
      subjectFor: (p) => `periscope.raw.n.${p}`,
      maxFrames: 10,
      onPublished: (f) => published.push(Number(f.seq)),
    });
    expect(q.offer(frame(1, 0))).toBe(true);
    expect(q.offer(frame(1, 3))).toBe(true);
    q.pump();
    expect(t.sent.map((s) => [s.subject, s.frame.seq])).toEqual([
      ["periscope.raw.n.0", 1n],
      ["periscope.raw.n.3", 1n],
    ]);
    expect(published).toEqual([1, 1]);
    expect(q.length).toBe(0);
  });

  test("publish queue - holds frames while disconnected and refuses when full", () => {
    const t = memoryTransport();
    t.up = false;
    const q = new PublishQueue({ transport: t, subjectFor: String, maxFrames: 2 });
    expect([q.offer(frame(1)), q.offer(frame(2)), q.offer(frame(3))]).toEqual([true, true, false]);
    q.pump();
    expect(t.sent).toHaveLength(0);
    t.up = true;
    q.pump();
    expect(t.sent.map((s) => s.frame.seq)).toEqual([1n, 2n]);
  });

  test("publish queue - pauses after max unflushed bytes until the flush completes", async () => {
    const t = memoryTransport();
    const q = new PublishQueue({
      transport: t,
      subjectFor: String,
      maxFrames: 10,
      maxUnflushedBytes: 1,
    });
    for (let i = 1; i <= 3; i++) q.offer(frame(i));
    q.pump();
    expect(t.sent).toHaveLength(1);
    q.pump();
    expect(t.sent).toHaveLength(1);
    t.pendingFlushes.shift()?.();
    await Promise.resolve();
    await Promise.resolve();
    expect(t.sent).toHaveLength(2);
  });

  test("publish queue - a failing publish is reported with the frame", () => {
    const t = memoryTransport();
    t.failPublish = true;
    const failed: RawFrame[] = [];
    const q = new PublishQueue({
      transport: t,
      subjectFor: String,
      maxFrames: 10,
      onPublishError: (f) => failed.push(f),
    });
    q.offer(frame(1, 0, 5));
    q.pump();
    expect(failed.map((f) => f.records.length)).toEqual([5]);
    expect(q.length).toBe(0);
  });

  test("publish queue - drain gives up at the deadline and leaves frames to take", async () => {
    const t = memoryTransport();
    t.up = false;
    const q = new PublishQueue({ transport: t, subjectFor: String, maxFrames: 10 });
    q.offer(frame(1));
    q.offer(frame(2));
    expect(await q.drain(20)).toBe(2);
    expect(q.takeAll().map((f) => f.seq)).toEqual([1n, 2n]);
    expect(q.length).toBe(0);
  });
});
