import { describe, expect, test } from "bun:test";
import { decodeTraceRecord, packedSize } from "@periscope/wire";
import { isRoot, udpFrame } from "./test-helpers.ts";
import { TraceProgram } from "./trace-program.ts";

/** The records in a packed copy (u32 length, 4 ignored bytes, record, padding to 8). */
function unpack(buf: Uint8Array, bytes: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset);
  for (let off = 0; off < bytes; ) {
    const len = view.getUint32(off, true) & 0x3fff_ffff;
    out.push(buf.subarray(off + 8, off + 8 + len));
    off += packedSize(len);
  }
  return out;
}

describe.skipIf(!isRoot)("ring buffer reader (root, real kernel)", () => {
  test("ring buffer - copyPacked takes every record across many wraps of a small ring, in order", () => {
    const prog = TraceProgram.load({ captureLen: 64, ringBufferBytes: 16384 });
    try {
      let sent = 0;
      let got = 0;
      const dst = new Uint8Array(64 << 10);
      for (let round = 0; round < 50; round++) {
        const n = 37 + (round % 5);
        prog.testRun(udpFrame(60 + (round % 4)), n, "ingress");
        sent += n;
        const r = prog.copyPacked(dst, 8, dst.length - 8, 10_000);
        expect(r.full).toBe(false);
        const recs = unpack(dst.subarray(8), r.bytes);
        expect(recs).toHaveLength(r.records);
        for (const rec of recs) expect(decodeTraceRecord(rec).origLen).toBe(60 + (round % 4));
        got += r.records;
      }
      const lost = prog.readKernelLostPerCpu().reduce((a, b) => a + b, 0n);
      expect(lost).toBe(0n);
      expect(got).toBe(sent);
    } finally {
      prog.close();
    }
  });

  test.each([
    { name: "max records", cap: 1 << 20, maxRecords: 3, want: 3 },
    { name: "bytes", cap: 2 * packedSize(48 + 60) + 7, maxRecords: 100, want: 2 },
  ])("ring buffer - copyPacked stops at $name, says so and leaves the rest", (c) => {
    const prog = TraceProgram.load({ captureLen: 128 });
    try {
      prog.testRun(udpFrame(60), 5, "ingress");
      const dst = new Uint8Array(1 << 20);
      const first = prog.copyPacked(dst, 0, c.cap, c.maxRecords);
      expect(first).toEqual({ records: c.want, bytes: c.want * packedSize(48 + 60), full: true });
      const rest = prog.copyPacked(dst, 0, dst.length, 100);
      expect(rest).toMatchObject({ records: 5 - c.want, full: false });
      expect(prog.copyPacked(dst, 0, dst.length, 100)).toEqual({
        records: 0,
        bytes: 0,
        full: false,
      });
    } finally {
      prog.close();
    }
  });

  test("ring buffer - the native copier compiles here", () => {
    const prog = TraceProgram.load({ captureLen: 64 });
    try {
      const dst = new Uint8Array(4096);
      prog.testRun(udpFrame(60), 1, "ingress");
      expect(prog.copyPacked(dst, 0, dst.length, 10).records).toBe(1);
      expect(prog.nativeCopy).toBe(process.arch === "x64");
    } finally {
      prog.close();
    }
  });
});
