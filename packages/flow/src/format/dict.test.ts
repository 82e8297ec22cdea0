import { describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FlowSchema, GetFlowsResponseSchema, LostEventSource, Verdict } from "@periscope/proto";
import { formatDict } from "./dict.ts";

type FlowInit = MessageInitShape<typeof FlowSchema>;

// 2024-11-22T02:50:01.123Z
const TIME = { seconds: 1_732_243_801n, nanos: 123_000_000 };

function flowResponse(flow: FlowInit) {
  return create(GetFlowsResponseSchema, {
    time: TIME,
    nodeName: "node-1",
    responseTypes: { case: "flow", value: create(FlowSchema, flow) },
  });
}

const tcp: FlowInit = {
  verdict: Verdict.FORWARDED,
  IP: { source: "10.200.0.2", destination: "10.200.0.3", ipVersion: 1 },
  l4: { protocol: { case: "TCP", value: { sourcePort: 34567, destinationPort: 80 } } },
  source: { namespace: "demo", podName: "frontend" },
  destination: {},
  eventType: { type: 4, subType: 11 },
  Summary: "TCP Flags: SYN",
};

describe("dict format", () => {
  test("dict - a flow prints one aligned block with pod names, ports and the TYPE column", () => {
    expect(formatDict(flowResponse(tcp)).split("\n")).toEqual([
      "  TIMESTAMP: 2024-11-22T02:50:01.123Z",
      "     SOURCE: demo/frontend:34567",
      "DESTINATION: 10.200.0.3:80",
      "       TYPE: to-network",
      "    VERDICT: FORWARDED",
      "    SUMMARY: TCP Flags: SYN",
      "  NODE NAME: node-1",
      "------------",
    ]);
  });

  test.each<[string, FlowInit, string]>([
    [
      "TCP without a summary lists its flags",
      {
        ...tcp,
        Summary: "",
        l4: { protocol: { case: "TCP", value: { flags: { SYN: true, ACK: true } } } },
      },
      "TCP Flags: SYN, ACK",
    ],
    [
      "ICMP without a summary gives type and code",
      { ...tcp, Summary: "", l4: { protocol: { case: "ICMPv4", value: { type: 8, code: 0 } } } },
      "ICMPv4 type 8 code 0",
    ],
    ["no transport and no summary is empty", { ...tcp, Summary: "", l4: undefined }, ""],
  ])("dict - summary: %s", (_name, flow, want) => {
    expect(formatDict(flowResponse(flow)).split("\n")[5]).toBe(`    SUMMARY: ${want}`);
  });

  test("dict - addresses without ports or known pods print bare", () => {
    const lines = formatDict(flowResponse({ ...tcp, source: {}, l4: undefined })).split("\n");
    expect(lines[1]).toBe("     SOURCE: 10.200.0.2");
    expect(lines[2]).toBe("DESTINATION: 10.200.0.3");
  });

  test("dict - lost events print their source and count", () => {
    const resp = create(GetFlowsResponseSchema, {
      time: TIME,
      responseTypes: {
        case: "lostEvents",
        value: { source: LostEventSource.PERF_EVENT_RING_BUFFER, numEventsLost: 42n },
      },
    });
    expect(formatDict(resp).split("\n")).toEqual([
      "  TIMESTAMP: 2024-11-22T02:50:01.123Z",
      "       TYPE: EVENTS LOST",
      "     SOURCE: PERF_EVENT_RING_BUFFER",
      "   NUM LOST: 42",
      "------------",
    ]);
  });

  test("dict - responses without a time say N/A; other response kinds print nothing", () => {
    const noTime = create(GetFlowsResponseSchema, {
      responseTypes: { case: "flow", value: create(FlowSchema, tcp) },
    });
    expect(formatDict(noTime).split("\n")[0]).toBe("  TIMESTAMP: N/A");
    expect(formatDict(create(GetFlowsResponseSchema, {}))).toBe("");
  });
});
