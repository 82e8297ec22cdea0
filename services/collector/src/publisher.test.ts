import { describe, expect, test } from "bun:test";
import type { RawFrame } from "@periscope/proto";
import { createRawFrame, decodeRawFrame, encodeRawFrame } from "@periscope/wire";
import type { SealedFrame } from "./framer.ts";
import { type FrameTransport, frameMsgId, PublishQueue } from "./publisher.ts";

interface Pending {
  subject: string;
  frame: RawFrame;
  msgId: string;
  ack(): void;
  refuse(err: Error): void;
}

/** An in-memory broker whose connectivity and acknowledgements the test controls. */
class MemoryTransport implements FrameTransport {
  up = true;
  readonly pending: Pending[] = [];
  readonly stored: { subject: string; frame: RawFrame; msgId: string }[] = [];
  publish(subject: string, payload: Uint8Array, msgId: string): Promise<void> {
    const frame = decodeRawFrame(payload);
    return new Promise<void>((resolve, reject) => {
      this.pending.push({
        subject,
        frame,
        msgId,
        ack: () => {
          if (!this.stored.some((s) => s.msgId === msgId))
            this.stored.push({ subject, frame, msgId });
          resolve();
        },
        refuse: reject,
      });
    });
  }
  connected(): boolean {
    return this.up;
  }
  /** Acknowledges every pending publish and lets the queue see it. */
  async ackAll(): Promise<void> {
    for (const p of this.pending.splice(0)) p.ack();
    await Bun.sleep(0);
  }
}

function frame(seq: number, partition = 0, records = 1): SealedFrame {
  const msg = createRawFrame({
    nodeName: "n",
    bootId: "b",
    seq: BigInt(seq),
    partition,
    records: Array.from({ length: records }, () => new Uint8Array(48)),
  });
  return {
    bootId: "b",
    partition,
    seq: msg.seq,
    recordsBefore: 0n,
    records,
    kernelLost: 0n,
    collectorLost: 0n,
    kernelLosses: [],
    bytes: encodeRawFrame(msg),
  };
}

describe("publish queue", () => {
  test("publish queue - publishes on the partition's subject, reports only acknowledged frames", async () => {
    const t = new MemoryTransport();
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
    expect(t.pending.map((s) => [s.subject, s.frame.seq, s.msgId])).toEqual([
      ["periscope.raw.n.0", 1n, "b.0.1"],
      ["periscope.raw.n.3", 1n, "b.3.1"],
    ]);
    expect(published).toEqual([]);
    expect(q.inFlight).toBe(2);
    await t.ackAll();
    expect(published).toEqual([1, 1]);
    expect(q.length + q.inFlight).toBe(0);
  });

  test("publish queue - holds frames while disconnected and refuses when full (in flight counts)", async () => {
    const t = new MemoryTransport();
    t.up = false;
    const q = new PublishQueue({ transport: t, subjectFor: String, maxFrames: 2 });
    expect([q.offer(frame(1)), q.offer(frame(2)), q.offer(frame(3))]).toEqual([true, true, false]);
    q.pump();
    expect(t.pending).toHaveLength(0);
    t.up = true;
    q.pump();
    expect(t.pending.map((s) => s.frame.seq)).toEqual([1n, 2n]);
    expect(q.offer(frame(3))).toBe(false);
    await t.ackAll();
    expect(q.offer(frame(3))).toBe(true);
  });

  test("publish queue - a refused publish is retried with the same msgId after retryMs", async () => {
    const t = new MemoryTransport();
    let now = 0;
    const retried: bigint[] = [];
    const q = new PublishQueue({
      transport: t,
      subjectFor: String,
      maxFrames: 10,
      retryMs: 100,
      now: () => now,
      onRetry: (f) => retried.push(f.seq),
    });
    q.offer(frame(1, 0, 5));
    q.pump();
    t.pending.shift()?.refuse(new Error("no responders"));
    await Bun.sleep(0);
    expect(retried).toEqual([1n]);
    expect(q.length).toBe(1);
    q.pump();
    expect(t.pending).toHaveLength(0);
    now = 150;
    q.pump();
    expect(t.pending.map((p) => p.msgId)).toEqual([frameMsgId(frame(1))]);
    await t.ackAll();
    expect(t.stored.map((s) => s.frame.records.length)).toEqual([5]);
  });

  test("publish queue - a publish that throws synchronously is retried too", async () => {
    const t = new MemoryTransport();
    let calls = 0;
    const flaky: FrameTransport = {
      publish: (s, p, id) => {
        calls++;
        if (calls === 1) throw new Error("connection closed");
        return t.publish(s, p, id);
      },
      connected: () => true,
    };
    const q = new PublishQueue({ transport: flaky, subjectFor: String, maxFrames: 10, retryMs: 0 });
    q.offer(frame(1));
    q.pump();
    await Bun.sleep(0);
    q.pump();
    await t.ackAll();
    expect(t.stored.map((s) => s.frame.seq)).toEqual([1n]);
  });

  test("publish queue - drain waits for acknowledgements, gives up at the deadline", async () => {
    const t = new MemoryTransport();
    const q = new PublishQueue({ transport: t, subjectFor: String, maxFrames: 10 });
    q.offer(frame(1));
    const draining = q.drain(2000);
    await Bun.sleep(0);
    await t.ackAll();
    expect(await draining).toBe(0);

    t.up = false;
    q.offer(frame(2));
    q.offer(frame(3));
    expect(await q.drain(20)).toBe(2);
    expect(q.takeAll().map((f) => f.seq)).toEqual([2n, 3n]);
    expect(q.length).toBe(0);
  });
});
