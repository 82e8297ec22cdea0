import { expect, test } from "bun:test";
import { FlowType, L7FlowType } from "@periscope/proto";
import { ethernet, ipv4, udp } from "@periscope/testing";
import {
  encodeRawFrame,
  encodeTraceRecord,
  OBS_FROM_NETWORK,
  OBS_TO_NETWORK,
  RECORD_TYPE_TRACE,
  TRACE_VERSION,
} from "@periscope/wire";
import { processFrame } from "./frames.ts";
import { L7Tracker } from "./l7/tracker.ts";

const Q = [0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 120, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1];
const A = [
  0,
  9,
  0x81,
  0x80,
  0,
  1,
  0,
  1,
  0,
  0,
  0,
  0,
  ...Q.slice(12),
  0xc0,
  12,
  0,
  1,
  0,
  1,
  0,
  0,
  0,
  30,
  0,
  4,
  10,
  9,
  9,
  9,
];

function dnsRecord(
  fromClient: boolean,
  payload: number[],
  tsMs: number,
  obsPoint: number,
): Uint8Array {
  const [src, dst, sport, dport] = fromClient
    ? ["10.0.0.1", "10.0.0.53", 40000, 53]
    : ["10.0.0.53", "10.0.0.1", 53, 40000];
  const data = ethernet(
    { etherType: 0x0800 },
    ipv4({ src, dst, protocol: 17 }, udp(sport, dport, new Uint8Array(payload))),
  );
  return encodeTraceRecord({
    type: RECORD_TYPE_TRACE,
    obsPoint,
    version: TRACE_VERSION,
    flags: 0,
    cpu: 0,
    origLen: data.length,
    tsBootNs: BigInt(tsMs) * 1_000_000n,
    ifindex: 2,
    mark: 0,
    flowHash: 1,
    l3Proto: 0x0800,
    pktType: 0,
    netnsCookie: 1n,
    data,
  });
}

test("enricher frames - an L7 flow follows the packet flow it was read from; the frame's records are unchanged", () => {
  const l7 = new L7Tracker({
    dnsPorts: new Set([53]),
    httpPorts: new Set(),
    httpHeaders: new Set(),
  });
  const records = [
    dnsRecord(true, Q, 1, OBS_TO_NETWORK),
    dnsRecord(true, Q, 1, OBS_FROM_NETWORK), // the same query arriving at the server
    dnsRecord(false, A, 3, OBS_TO_NETWORK),
    dnsRecord(false, Q.slice(0, 7), 4, OBS_TO_NETWORK), // too short: counted, stays a packet flow
  ];
  const frame = encodeRawFrame({
    nodeName: "n",
    seq: 1n,
    bootId: "b",
    partition: 0,
    bootToRealtimeNs: 0n,
    records,
  });
  const r = processFrame(frame, { endpoint: () => undefined, l7 });
  const flows = r.batch.responses.flatMap((x) =>
    x.responseTypes.case === "flow" ? [x.responseTypes.value] : [],
  );
  expect(flows.map((f) => [f.Type, f.l7?.type ?? null])).toEqual([
    [FlowType.L3_L4, null],
    [FlowType.L7, L7FlowType.REQUEST],
    [FlowType.L3_L4, null],
    [FlowType.L3_L4, null],
    [FlowType.L7, L7FlowType.RESPONSE],
    [FlowType.L3_L4, null],
  ]);
  expect(r.flows).toBe(6);
  expect(r.l7Flows).toBe(2);
  expect(r.failures.size).toBe(0);
  expect(r.batch.responses.some((x) => x.responseTypes.case === "lostEvents")).toBe(false);
  expect(flows[4]?.l7?.latencyNs).toBe(2_000_000n);
  expect(l7.counts.unparsed.dns.truncated).toBe(1);
  // the answer names 10.9.9.9 on flows decoded after it
  const later = encodeRawFrame({
    nodeName: "n",
    seq: 2n,
    bootId: "b",
    partition: 0,
    bootToRealtimeNs: 0n,
    records: [dnsRecord(true, Q, 500, OBS_TO_NETWORK)], // a new query: past the 200 ms repeat window
  });
  expect(processFrame(later, { endpoint: () => undefined, l7 }).flows).toBe(2);
  expect(l7.names.names("10.9.9.9", Date.now())).toEqual(["x.test"]);
});
