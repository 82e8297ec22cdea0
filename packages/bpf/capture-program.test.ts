import { afterAll, beforeAll, expect, test } from "bun:test";
import { createVethPair, runOk, tcFilterProgIds, type VethPair } from "@periscope/testing";
import { type CaptureRecord, decodeCaptureRecord, type TraceRecord } from "@periscope/wire";
import { CaptureProgram } from "./capture-program.ts";
import { drainUntil, isRoot } from "./test-helpers.ts";
import { TraceProgram } from "./trace-program.ts";

const ip4 = (s: string) => new Uint8Array(s.split(".").map(Number));
let pair: VethPair | undefined;
let trace: TraceProgram | undefined;
let capture: CaptureProgram | undefined;

beforeAll(async () => {
  if (!isRoot) return;
  pair = await createVethPair();
  trace = TraceProgram.load({ filterPriority: 0x9000 });
  capture = CaptureProgram.load({ ringBufferBytes: 1 << 20, filterPriority: 0x5000 });
});

afterAll(async () => {
  capture?.close();
  trace?.close();
  await pair?.destroy();
});

async function sendUdp(port: number, text: string): Promise<void> {
  const p = pair as VethPair;
  await runOk([
    "ip",
    "netns",
    "exec",
    p.nsA,
    "bash",
    "-c",
    `echo -n ${text} > /dev/udp/${p.ipB}/${port}`,
  ]);
}

async function drainCaptures(n: number): Promise<CaptureRecord[]> {
  const out: CaptureRecord[] = [];
  const deadline = Date.now() + 5000;
  while (out.length < n && Date.now() < deadline) {
    capture?.drain((b) => out.push(decodeCaptureRecord(b)));
    if (out.length < n) await Bun.sleep(10);
  }
  return out;
}

test.skipIf(!isRoot)(
  "capture program - copies matching packets per recording, beside an untouched trace program",
  async () => {
    const p = pair as VethPair;
    const target = { netns: p.nsA, ifname: p.ifA };
    trace?.attach(target);
    capture?.attach(target);
    // Both filters on the egress hook, trace first in the list (lower priority runs first).
    const ids = await tcFilterProgIds(p.nsA, p.ifA, "egress");
    expect(ids.length).toBe(2);
    capture?.setFilters(
      [
        {
          family: 4,
          proto: 17,
          srcAddr: ip4("0.0.0.0"),
          srcPrefix: 0,
          dstAddr: ip4(p.ipB),
          dstPrefix: 32,
          srcPort: 0,
          dstPort: 5678,
          slot: 0,
        },
        {
          family: 4,
          proto: 0,
          srcAddr: ip4("10.231.0.0"),
          srcPrefix: 24,
          dstAddr: ip4("0.0.0.0"),
          dstPrefix: 0,
          srcPort: 0,
          dstPort: 0,
          slot: 1,
        },
      ],
      new Map([
        [0, 65535],
        [1, 50],
      ]),
    );
    await sendUdp(5678, "first-payload");
    await sendUdp(9999, "other-datagram-payload");
    const recs = await drainCaptures(2);
    const udp = recs.filter((r) => r.data[12] === 0x08 && r.data[23] === 17);
    expect(udp.length).toBe(2);
    const [a, b] = udp as [CaptureRecord, CaptureRecord];
    expect(a.recordings).toBe(0b11);
    expect(a.data.length).toBe(a.origLen); // whole packet: slot 0 wants all of it
    expect(new TextDecoder().decode(a.data.subarray(42))).toBe("first-payload");
    expect(b.recordings).toBe(0b10);
    expect(b.data.length).toBe(50);
    expect(b.flags & 1).toBe(1);
    expect(b.origLen).toBe(42 + 22);
    // The trace program still saw both datagrams.
    const traced = await drainUntil(
      trace as TraceProgram,
      (r: TraceRecord[]) => r.filter((x) => x.data[23] === 17).length >= 2,
    );
    expect(traced.filter((x) => x.data[23] === 17).length).toBeGreaterThanOrEqual(2);
    // No filters: nothing captured.
    capture?.setFilters([], new Map());
    await sendUdp(5678, "ignored");
    // The datagram passed tc egress before the sender exited.
    expect(capture?.drain(() => {})).toBe(0);
    expect(capture?.readLost().every((n) => n === 0n)).toBe(true);
    capture?.detach(target);
    expect((await tcFilterProgIds(p.nsA, p.ifA, "egress")).length).toBe(1);
  },
  20_000,
);
