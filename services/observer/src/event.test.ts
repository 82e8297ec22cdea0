import { describe, expect, test } from "bun:test";
import { create, equals, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  FlowBatchSchema,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
  LostEventSchema,
  LostEventSource,
} from "@periscope/proto";
import { readFlowBatch, StoredEvent, WireFormatError } from "./event.ts";
import { testFlowResponse } from "./testing.ts";

const flow = testFlowResponse({
  timeMs: 1_700_000_000_123,
  node: "node-a",
  srcNamespace: "shop",
  srcPod: "cart-1",
  dstNamespace: "kube-system",
});
const noRespTime = create(GetFlowsResponseSchema, {
  nodeName: "node-b",
  responseTypes: flow.responseTypes,
});
const lost = create(GetFlowsResponseSchema, {
  nodeName: "node-c",
  time: timestampFromMs(-1500),
  responseTypes: {
    case: "lostEvents",
    value: create(LostEventSchema, {
      source: LostEventSource.PERF_EVENT_RING_BUFFER,
      numEventsLost: 7n,
    }),
  },
});
const empty = create(GetFlowsResponseSchema, {});

describe("stored event", () => {
  test.each([
    ["flow", flow],
    ["flow without response time", noRespTime],
    ["lost event before the epoch", lost],
    ["empty response", empty],
  ])("event - %s read from bytes matches the decoded message", (_name, resp: GetFlowsResponse) => {
    const bytes = toBinary(GetFlowsResponseSchema, resp);
    const fromBytes = StoredEvent.fromBytes(bytes);
    const fromResp = StoredEvent.fromResponse(resp);
    expect(fromBytes.kind).toBe(fromResp.kind);
    expect(fromBytes.nodeName).toBe(fromResp.nodeName);
    expect(fromBytes.ns).toBe(fromResp.ns);
    expect(fromBytes.namespaces).toEqual(fromResp.namespaces);
    expect(equals(GetFlowsResponseSchema, fromBytes.resp, resp)).toBe(true);
    // What is sent serializes to exactly the received bytes.
    expect(toBinary(GetFlowsResponseSchema, fromBytes.wire())).toEqual(bytes);
    expect(toBinary(GetFlowsResponseSchema, fromResp.wire())).toEqual(bytes);
  });

  test("event - flow fields the store needs", () => {
    const ev = StoredEvent.fromBytes(toBinary(GetFlowsResponseSchema, flow));
    expect(ev.kind).toBe("flow");
    expect(ev.ns).toBe(1_700_000_000_123_000_000n);
    expect(ev.namespaces).toEqual([
      { cluster: "", namespace: "shop" },
      { cluster: "", namespace: "kube-system" },
    ]);
  });

  test("event - a FlowBatch splits into its events in order", () => {
    const batch = create(FlowBatchSchema, { responses: [flow, lost, noRespTime] });
    const events = readFlowBatch(toBinary(FlowBatchSchema, batch));
    expect(events.map((e) => e.nodeName)).toEqual(["node-a", "node-c", "node-b"]);
    expect(events.map((e) => e.kind)).toEqual(["flow", "lostEvents", "flow"]);
  });

  test.each([
    ["truncated length", new Uint8Array([0x0a, 0x05, 0x01])],
    ["bad wire type", new Uint8Array([0x0f, 0x00])],
    ["field number 0", new Uint8Array([0x02, 0x00])],
    ["text", new TextEncoder().encode("definitely not protobuf")],
  ])("event - malformed FlowBatch (%s) is rejected", (_name, payload) => {
    expect(() => readFlowBatch(payload)).toThrow(WireFormatError);
  });

  test("event - only the most recently decoded events keep their message", () => {
    const keep = StoredEvent.decodedKeep;
    StoredEvent.decodedKeep = 50;
    try {
      keptOnlyRecent(50);
    } finally {
      StoredEvent.decodedKeep = keep;
    }
  });

  function keptOnlyRecent(keep: number): void {
    const bytes = toBinary(GetFlowsResponseSchema, flow);
    const first = StoredEvent.fromBytes(bytes);
    const firstResp = first.resp;
    expect(first.resp).toBe(firstResp); // kept while recent
    let last = first;
    for (let i = 0; i < keep; i++) {
      last = StoredEvent.fromBytes(bytes);
      void last.resp;
    }
    expect(last.resp).toBe(last.resp);
    // Displaced: decoded again on use, to an equal message.
    const again = first.resp;
    expect(again).not.toBe(firstResp);
    expect(equals(GetFlowsResponseSchema, again, firstResp)).toBe(true);
    // Decoded messages without bytes are all they have: always kept.
    const made = StoredEvent.fromResponse(flow);
    for (let i = 0; i < keep; i++) void StoredEvent.fromBytes(bytes).resp;
    expect(made.resp).toBe(flow);
  }
});
