import { describe, expect, test } from "bun:test";
import type { EndpointInfo } from "@periscope/model";
import { LostEventSource } from "@periscope/proto";
import { ethernet, ipv4, tcp } from "@periscope/testing";
import {
  encodeRawFrame,
  encodeTraceRecord,
  MalformedFrameError,
  OBS_TO_NETWORK,
  RECORD_TYPE_TRACE,
  TRACE_LAYOUT,
  TRACE_VERSION,
} from "@periscope/wire";
import { processFrame } from "./frames.ts";

/** Ethernet + IPv4 + TCP SYN from 10.200.0.10:40000 to 10.200.0.11:8080. */
function tcpSyn(): Uint8Array {
  return ethernet(
    { src: "02:00:00:00:00:0a", dst: "02:00:00:00:00:0b", etherType: 0x0800 },
    ipv4({ src: "10.200.0.10", dst: "10.200.0.11", protocol: 6 }, tcp(40000, 8080, ["SYN"])),
  );
}

function traceRecord(data: Uint8Array): Uint8Array {
  return encodeTraceRecord({
    type: RECORD_TYPE_TRACE,
    obsPoint: OBS_TO_NETWORK,
    version: TRACE_VERSION,
    flags: 0,
    cpu: 1,
    origLen: data.length,
    tsBootNs: 5_000_000_000n,
    ifindex: 7,
    mark: 0,
    flowHash: 42,
    l3Proto: 0x0800,
    pktType: 0,
    netnsCookie: 0n,
    data,
  });
}

const endpoints: Record<string, EndpointInfo> = {
  "10.200.0.10": { namespace: "demo", podName: "frontend", labels: ["app=frontend"] },
  "10.200.0.11": { namespace: "demo", podName: "backend", labels: ["app=backend"] },
};
const deps = { endpoint: (ip: string) => endpoints[ip] };

function frame(records: Uint8Array[], extra: { kernelLost?: bigint; collectorLost?: bigint } = {}) {
  return encodeRawFrame({
    nodeName: "node-a",
    seq: 1n,
    bootId: "boot-1",
    partition: 0,
    bootToRealtimeNs: 1_700_000_000_000_000_000n,
    sealedUnixNs: 1_700_000_005_000_000_000n,
    records,
    ...extra,
  });
}

describe("enricher frames", () => {
  test("enricher - decodes a trace record into a flow with endpoints and time", () => {
    const r = processFrame(frame([traceRecord(tcpSyn())]), deps);
    expect(r.flows).toBe(1);
    expect(r.batch.responses).toHaveLength(1);
    const resp = r.batch.responses[0];
    expect(resp?.nodeName).toBe("node-a");
    if (resp?.responseTypes.case !== "flow") throw new Error("expected a flow");
    const f = resp.responseTypes.value;
    expect(f.IP?.source).toBe("10.200.0.10");
    expect(f.IP?.destination).toBe("10.200.0.11");
    expect(f.source?.podName).toBe("frontend");
    expect(f.destination?.podName).toBe("backend");
    expect(f.destination?.namespace).toBe("demo");
    expect(f.l4?.protocol.case).toBe("TCP");
    expect(f.nodeName).toBe("node-a");
    expect(resp.time?.seconds).toBe(1_700_000_005n);
  });

  test("enricher - reports kernel and collector losses as lost events", () => {
    const r = processFrame(frame([], { kernelLost: 3n, collectorLost: 2n }), deps);
    const lost = r.batch.responses.map((x) =>
      x.responseTypes.case === "lostEvents" ? x.responseTypes.value : undefined,
    );
    expect(lost.map((l) => [l?.source, l?.numEventsLost])).toEqual([
      [LostEventSource.PERF_EVENT_RING_BUFFER, 3n],
      [LostEventSource.OBSERVER_EVENTS_QUEUE, 2n],
    ]);
  });

  test("enricher - a malformed record is counted and reported, the rest of the frame survives", () => {
    const bad = new Uint8Array([RECORD_TYPE_TRACE, 10, 9, 0, 0, 0]);
    const r = processFrame(frame([bad, traceRecord(tcpSyn())]), deps);
    expect(r.flows).toBe(1);
    expect(r.failures.get("malformed_record")).toBe(1);
    const last = r.batch.responses.at(-1);
    if (last?.responseTypes.case !== "lostEvents") throw new Error("expected a lost event last");
    expect(last.responseTypes.value.numEventsLost).toBe(1n);
    expect(last.responseTypes.value.source).toBe(LostEventSource.UNKNOWN_LOST_EVENT_SOURCE);
  });

  test("enricher - an unknown record type is counted, not decoded", () => {
    const rec = traceRecord(tcpSyn());
    rec[0] = 200;
    const r = processFrame(frame([rec]), deps);
    expect(r.flows).toBe(0);
    expect(r.failures.get("unknown_record_type")).toBe(1);
  });

  test.each([
    ["garbage bytes", new Uint8Array([0xff, 0xff, 0xff, 0x01])],
    ["empty node name", encodeRawFrame({ nodeName: "", seq: 1n, bootId: "b" })],
    ["seq zero", encodeRawFrame({ nodeName: "n", seq: 0n, bootId: "b" })],
  ])("enricher - malformed frame (%s) throws MalformedFrameError", (_name, bytes) => {
    expect(() => processFrame(bytes, deps)).toThrow(MalformedFrameError);
  });
});

describe("enricher frame order", () => {
  test("enricher - flows in a batch come out in kernel time order", () => {
    const at = (ns: bigint) => {
      const r = traceRecord(tcpSyn());
      new DataView(r.buffer).setBigUint64(TRACE_LAYOUT.fields.ts_boot_ns.offset, ns, true);
      return r;
    };
    const r = processFrame(frame([at(300n), at(100n), at(200n)]), deps);
    const nanos = r.batch.responses.map((x) => x.time?.nanos);
    expect(nanos).toEqual([100, 200, 300]);
  });
});
