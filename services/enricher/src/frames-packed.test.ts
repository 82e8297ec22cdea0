import { describe, expect, test } from "bun:test";
import { LostEventSource } from "@periscope/proto";
import { ethernet, ipv4, udp } from "@periscope/testing";
import {
  encodeRawFrame,
  encodeTraceRecord,
  OBS_FROM_NETWORK,
  packedSize,
  RECORD_TYPE_TRACE,
  TRACE_VERSION,
} from "@periscope/wire";
import { processFrame } from "./frames.ts";

function traceRecord(srcPort: number): Uint8Array {
  const data = ethernet(
    { src: "02:00:00:00:00:0a", dst: "02:00:00:00:00:0b", etherType: 0x0800 },
    ipv4(
      { src: "10.200.0.10", dst: "10.200.0.11", protocol: 17 },
      udp(srcPort, 53, new Uint8Array(4)),
    ),
  );
  return encodeTraceRecord({
    type: RECORD_TYPE_TRACE,
    obsPoint: OBS_FROM_NETWORK,
    version: TRACE_VERSION,
    flags: 0,
    cpu: 0,
    origLen: data.length,
    tsBootNs: 1_000n,
    ifindex: 3,
    mark: 0,
    flowHash: 1,
    l3Proto: 0x0800,
    pktType: 0,
    netnsCookie: 0n,
    data,
  });
}

/** Records in packed_records layout; the 4 ignored header bytes and the padding hold junk. */
function pack(records: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(records.reduce((n, r) => n + packedSize(r.length), 0)).fill(0xcc);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const r of records) {
    view.setUint32(off, r.length, true);
    out.set(r, off + 8);
    off += packedSize(r.length);
  }
  return out;
}

const deps = { endpoint: () => undefined };

function frame(init: Parameters<typeof encodeRawFrame>[0]): Uint8Array {
  return encodeRawFrame({ nodeName: "node-a", seq: 1n, bootId: "boot-1", ...init });
}

function ports(r: ReturnType<typeof processFrame>): number[] {
  return r.batch.responses.flatMap((x) =>
    x.responseTypes.case === "flow" && x.responseTypes.value.l4?.protocol.case === "UDP"
      ? [x.responseTypes.value.l4.protocol.value.sourcePort]
      : [],
  );
}

describe("enricher packed frames", () => {
  test("enricher - decodes records from packed_records after the records field", () => {
    const r = processFrame(
      frame({
        records: [traceRecord(1000)],
        packedRecords: pack([traceRecord(1001), traceRecord(1002)]),
        packedCount: 2,
      }),
      deps,
    );
    expect(r.flows).toBe(3);
    expect(ports(r).sort()).toEqual([1000, 1001, 1002]);
  });

  test.each([
    { name: "a length past the end", cut: 20, want: 1, flows: 1 },
    { name: "fewer records than packed_count", cut: 0, want: 1, flows: 2, extraCount: 1 },
  ])("enricher - packed_records with $name counts the unreadable records as malformed", (c) => {
    const packed = pack([traceRecord(1), traceRecord(2)]);
    const r = processFrame(
      frame({
        packedRecords: packed.subarray(0, packed.length - c.cut),
        packedCount: 2 + (c.extraCount ?? 0),
      }),
      deps,
    );
    expect(r.flows).toBe(c.flows);
    expect(r.failures.get("malformed_record")).toBe(c.want);
    const lost = r.batch.responses.flatMap((x) =>
      x.responseTypes.case === "lostEvents" ? [x.responseTypes.value] : [],
    );
    expect(lost.map((l) => [l.source, l.numEventsLost])).toEqual([
      [LostEventSource.UNKNOWN_LOST_EVENT_SOURCE, BigInt(c.want)],
    ]);
  });

  test("enricher - kernel loss becomes one lost event per CPU, a rest without a CPU", () => {
    const r = processFrame(
      frame({
        kernelLost: 10n,
        kernelLosses: [
          { cpu: 0, count: 3n },
          { cpu: 1, count: 5n },
        ],
      }),
      deps,
    );
    const lost = r.batch.responses.flatMap((x) =>
      x.responseTypes.case === "lostEvents" ? [x.responseTypes.value] : [],
    );
    expect(lost.map((l) => [l.source, l.numEventsLost, l.cpu])).toEqual([
      [LostEventSource.PERF_EVENT_RING_BUFFER, 3n, 0],
      [LostEventSource.PERF_EVENT_RING_BUFFER, 5n, 1],
      [LostEventSource.PERF_EVENT_RING_BUFFER, 2n, undefined],
    ]);
  });
});
