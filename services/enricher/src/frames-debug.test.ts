import { expect, test } from "bun:test";
import { DebugEventType, LostEventSource } from "@periscope/proto";
import { ethernet, ipv4, tcp } from "@periscope/testing";
import {
  encodeDebugRecord,
  encodeRawFrame,
  encodeTraceRecord,
  OBS_TO_NETWORK,
  RECORD_TYPE_TRACE,
  TRACE_VERSION,
} from "@periscope/wire";
import { processFrame } from "./frames.ts";

const debugRecord = (subtype: number, arg1: number) =>
  encodeDebugRecord({
    subtype,
    cpu: 1,
    tsBootNs: 2_000_000_000n,
    ifindex: 7,
    flowHash: 0xabc,
    arg1,
    arg2: 2,
    arg3: 3,
    netnsCookie: 99n,
  });

function frame(records: Uint8Array[]): Uint8Array {
  return encodeRawFrame({
    nodeName: "node-a",
    seq: 1n,
    bootId: "boot-1",
    partition: 0,
    bootToRealtimeNs: 1_700_000_000_000_000_000n,
    records,
  });
}

test("enricher frames - debug records become the batch's debug events, one per record", () => {
  const r = processFrame(frame([debugRecord(9, 1), debugRecord(6, 5)]), {
    endpoint: () => undefined,
    interfaceName: (node, cookie, ifindex) =>
      node === "node-a" && cookie === 99n && ifindex === 7 ? "eth0" : undefined,
  });
  expect(r.flows).toBe(0);
  expect(r.debugEvents).toBe(2);
  expect(r.batch.responses).toEqual([]);
  const [first, second] = r.batch.debugEvents;
  expect(first?.nodeName).toBe("node-a");
  expect(first?.time?.seconds).toBe(1_700_000_002n);
  expect(first?.debugEvent?.type).toBe(DebugEventType.DBG_CT_CREATED);
  expect(first?.debugEvent?.hash).toBe(0xabc);
  expect(first?.debugEvent?.cpu).toBe(1);
  expect([first?.debugEvent?.arg1, first?.debugEvent?.arg2, first?.debugEvent?.arg3]).toEqual([
    1, 2, 3,
  ]);
  expect(first?.debugEvent?.message).toBe("DBG_CT_CREATED on eth0 (7): arg1=0x1 arg2=0x2 arg3=0x3");
  expect(second?.debugEvent?.type).toBe(DebugEventType.DBG_CT_LOOKUP);
});

test("enricher frames - a debug event's source is the endpoint of the frame's flow with its hash", () => {
  const syn = ethernet(
    { src: "02:00:00:00:00:0a", dst: "02:00:00:00:00:0b", etherType: 0x0800 },
    ipv4({ src: "10.200.0.10", dst: "10.200.0.11", protocol: 6 }, tcp(40000, 8080, ["SYN"])),
  );
  const trace = encodeTraceRecord({
    type: RECORD_TYPE_TRACE,
    obsPoint: OBS_TO_NETWORK,
    version: TRACE_VERSION,
    flags: 0,
    cpu: 1,
    origLen: syn.length,
    tsBootNs: 2_000_000_001n,
    ifindex: 7,
    mark: 0,
    flowHash: 0xabc,
    l3Proto: 0x0800,
    pktType: 0,
    netnsCookie: 99n,
    data: syn,
  });
  const frontend = { namespace: "demo", podName: "frontend", labels: ["app=frontend"] };
  const r = processFrame(frame([debugRecord(9, 1), trace]), {
    endpoint: (ip) => (ip === "10.200.0.10" ? frontend : undefined),
  });
  expect(r.flows).toBe(1);
  const src = r.batch.debugEvents[0]?.debugEvent?.source;
  expect([src?.namespace, src?.podName]).toEqual(["demo", "frontend"]);
});

test("enricher frames - a malformed debug record is counted and reported lost", () => {
  const bad = debugRecord(9, 1).subarray(0, 30);
  const r = processFrame(frame([bad, debugRecord(9, 1)]), { endpoint: () => undefined });
  expect(r.debugEvents).toBe(1);
  expect(r.failures.get("malformed_record")).toBe(1);
  const lost = r.batch.responses.map((x) =>
    x.responseTypes.case === "lostEvents" ? x.responseTypes.value : undefined,
  );
  expect(lost[0]?.source).toBe(LostEventSource.UNKNOWN_LOST_EVENT_SOURCE);
  expect(lost[0]?.numEventsLost).toBe(1n);
});
