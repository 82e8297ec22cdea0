import { describe, expect, test } from "bun:test";
import { FLAG_TRUNCATED, TRACE_FIXED_SIZE } from "@periscope/wire";
import { TraceProgram } from "./index.ts";
import { drainUntil, isRoot, udpFrame } from "./test-helpers.ts";

describe.skipIf(!isRoot)("bpf trace program", () => {
  test.each([1, 64, 128, 1000, 1536])(
    "bpf trace - capture length %d is respected",
    async (captureLen) => {
      const prog = TraceProgram.load({ captureLen, ringBufferBytes: 1 << 16 });
      try {
        const frame = udpFrame(1000);
        expect(prog.testRun(frame, 1, "ingress").retval).toBe(-1);
        const recs = await drainUntil(prog, (rs) => rs.length >= 1);
        const want = Math.min(captureLen, frame.length);
        expect(recs.length).toBe(1);
        expect(recs[0]?.capLen).toBe(want);
        expect(recs[0]?.origLen).toBe(frame.length);
        expect(recs[0]?.flags).toBe(want < frame.length ? FLAG_TRUNCATED : 0);
        expect(recs[0]?.data).toEqual(frame.subarray(0, want));
      } finally {
        prog.close();
      }
    },
  );

  test("bpf trace - testRun emits one exact-size record per repetition; drain honours max", () => {
    const prog = TraceProgram.load();
    try {
      const frame = udpFrame(60);
      const res = prog.testRun(frame, 10, "egress");
      expect(res.retval).toBe(-1); // TC_ACT_UNSPEC: observe only
      expect(res.durationNs).toBeGreaterThanOrEqual(0);
      const sizes: number[] = [];
      expect(prog.drain((b) => sizes.push(b.length), 4)).toBe(4);
      expect(prog.drain((b) => sizes.push(b.length))).toBe(6);
      expect(prog.drain(() => {})).toBe(0);
      expect(sizes).toEqual(Array(10).fill(TRACE_FIXED_SIZE + 60));
    } finally {
      prog.close();
    }
  });

  test("bpf trace - a full ring buffer counts every record it could not take", () => {
    const prog = TraceProgram.load({ ringBufferBytes: 4096 });
    try {
      expect(prog.readKernelLost()).toBe(0n);
      prog.testRun(udpFrame(200), 100, "ingress");
      const delivered = prog.drain(() => {});
      const lost = prog.readKernelLost();
      expect(lost).toBeGreaterThan(0n);
      expect(BigInt(delivered) + lost).toBe(100n);
    } finally {
      prog.close();
    }
  });

  test("bpf trace - an exception in the drain callback stops the drain and is rethrown", () => {
    const prog = TraceProgram.load();
    try {
      prog.testRun(udpFrame(60), 3, "ingress");
      let seen = 0;
      const boom = new Error("boom");
      expect(() =>
        prog.drain(() => {
          seen++;
          if (seen === 2) throw boom;
        }),
      ).toThrow(boom);
      expect(seen).toBe(2);
      expect(prog.drain(() => {})).toBe(1);
    } finally {
      prog.close();
    }
  });

  test("bpf trace - UDP flow hash is the same in both directions", async () => {
    const prog = TraceProgram.load();
    try {
      const there = udpFrame(60);
      const back = udpFrame(60);
      back.set([10, 9, 0, 2, 10, 9, 0, 1, 0x16, 0x2e, 0x04, 0xd2], 26);
      const other = udpFrame(60);
      other.set([0x04, 0xd3], 34); // different source port
      prog.testRun(there, 1, "egress");
      prog.testRun(back, 1, "ingress");
      prog.testRun(other, 1, "egress");
      const recs = await drainUntil(prog, (rs) => rs.length >= 3);
      expect(recs.length).toBe(3);
      expect(recs[0]?.flowHash).toBe(recs[1]?.flowHash ?? -1);
      expect(recs[2]?.flowHash).not.toBe(recs[0]?.flowHash ?? -1);
    } finally {
      prog.close();
    }
  });

  test("bpf trace - load rejects bad options and a missing object", () => {
    expect(() => TraceProgram.load({ captureLen: 0 })).toThrow(RangeError);
    expect(() => TraceProgram.load({ captureLen: 1537 })).toThrow(RangeError);
    expect(() => TraceProgram.load({ ringBufferBytes: 5000 })).toThrow(RangeError);
    expect(() => TraceProgram.load({ objectPath: "/nonexistent/trace.bpf.o" })).toThrow(
      /bpf_object__open_file/,
    );
  });
});
