/** Test helpers shared by this package's kernel tests (not exported by index.ts). */
import type { TraceRecord } from "@periscope/wire";
import { decodeTraceRecord } from "@periscope/wire";
import type { TraceProgram } from "./trace-program.ts";

/** True when the tests can load BPF programs and create namespaces. */
export const isRoot = process.getuid?.() === 0;

/** Drains `prog` until `done` holds for the records seen so far, or the deadline passes. */
export async function drainUntil(
  prog: TraceProgram,
  done: (recs: TraceRecord[]) => boolean,
  timeoutMs = 5000,
): Promise<TraceRecord[]> {
  const recs: TraceRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    prog.drain((bytes) => recs.push(decodeTraceRecord(bytes)));
    if (done(recs) || Date.now() > deadline) return recs;
    await Bun.sleep(10);
  }
}

/** An Ethernet + IPv4 + UDP frame of `size` bytes (10.9.0.1:1234 -> 10.9.0.2:5678). */
export function udpFrame(size: number): Uint8Array {
  const f = new Uint8Array(size);
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
  f.set([0x45, 0, (size - 14) >> 8, (size - 14) & 0xff, 0, 0, 0x40, 0, 64, 17, 0, 0], 14);
  f.set([10, 9, 0, 1, 10, 9, 0, 2, 0x04, 0xd2, 0x16, 0x2e], 26);
  return f;
}

export const icmpType = (r: TraceRecord) => r.data[34];
export const echoRequests = (recs: TraceRecord[]) =>
  recs.filter((r) => r.data[23] === 1 && icmpType(r) === 8);
export const echoReplies = (recs: TraceRecord[]) =>
  recs.filter((r) => r.data[23] === 1 && icmpType(r) === 0);
