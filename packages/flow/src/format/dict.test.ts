import { describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  AuthType,
  FlowSchema,
  GetFlowsResponseSchema,
  LostEventSource,
  NodeState,
  Verdict,
} from "@periscope/proto";
import { formatDict } from "./dict.ts";
import { alignColumns, tableHeader, tableRow } from "./table.ts";

type FlowInit = MessageInitShape<typeof FlowSchema>;

// 2024-11-22T02:50:01.123Z
const TIME = { seconds: 1_732_243_801n, nanos: 123_000_000 };

function flowResponse(flow: FlowInit) {
  return create(GetFlowsResponseSchema, {
    time: TIME,
    nodeName: "node-1",
    responseTypes: { case: "flow", value: create(FlowSchema, { ...(flow as object), time: TIME }) },
  });
}

const tcp: FlowInit = {
  verdict: Verdict.FORWARDED,
  nodeName: "node-1",
  IP: { source: "10.200.0.2", destination: "10.200.0.3", ipVersion: 1 },
  l4: { protocol: { case: "TCP", value: { sourcePort: 34567, destinationPort: 80 } } },
  source: { namespace: "demo", podName: "frontend" },
  destination: {},
  eventType: { type: 4, subType: 11 },
  isReply: false,
  Summary: "TCP Flags: SYN",
};

const lostResponse = create(GetFlowsResponseSchema, {
  time: TIME,
  responseTypes: {
    case: "lostEvents",
    value: {
      source: LostEventSource.PERF_EVENT_RING_BUFFER,
      numEventsLost: 42n,
      cpu: 3,
      first: { seconds: 1_732_243_800n, nanos: 0 },
      last: TIME,
    },
  },
});

describe("dict format (hubble observe -o dict)", () => {
  test("dict - a flow prints hubble's block: StampMilli time, hosts as compact prints them", () => {
    expect(formatDict(flowResponse(tcp)).split("\n")).toEqual([
      "  TIMESTAMP: Nov 22 02:50:01.123",
      "     SOURCE: demo/frontend:34567",
      "DESTINATION: 10.200.0.3:80",
      "       TYPE: to-network",
      "    VERDICT: FORWARDED",
      "    SUMMARY: TCP Flags: SYN",
    ]);
  });

  test("dict - --print-node-name adds NODE, --time-format and auth show", () => {
    const lines = formatDict(flowResponse({ ...tcp, authType: AuthType.SPIRE }), {
      nodeName: true,
      timestamps: "RFC3339Milli",
    }).split("\n");
    expect(lines.slice(0, 2)).toEqual([
      "  TIMESTAMP: 2024-11-22T02:50:01.123Z",
      "       NODE: node-1",
    ]);
    expect(lines.at(-1)).toBe("    SUMMARY: TCP Flags: SYN; Auth: SPIRE");
  });

  test("dict - lost events print source, EVENTS LOST and the CPU/count summary with first/last", () => {
    expect(formatDict(lostResponse, { nodeName: true }).split("\n")).toEqual([
      "  TIMESTAMP: Nov 22 02:50:01.123",
      "       NODE: -",
      "     SOURCE: PERF_EVENT_RING_BUFFER",
      "       TYPE: EVENTS LOST",
      "    VERDICT: -",
      "    SUMMARY: CPU(3) - 42 (first: Nov 22 02:50:00.000, last: Nov 22 02:50:01.123)",
    ]);
  });

  test("dict - node status prints STATE, NODES and MESSAGE", () => {
    const resp = create(GetFlowsResponseSchema, {
      time: TIME,
      responseTypes: {
        case: "nodeStatus",
        value: { stateChange: NodeState.NODE_ERROR, nodeNames: ["a", "b"], message: "boom" },
      },
    });
    expect(formatDict(resp).split("\n")).toEqual([
      "  TIMESTAMP: Nov 22 02:50:01.123",
      "      STATE: NODE_ERROR",
      "      NODES: a, b",
      '    MESSAGE: "boom"',
    ]);
  });

  test("dict - escape characters and carriage returns in fields are made visible", () => {
    const text = formatDict(flowResponse({ ...tcp, Summary: "evil\x1b[2J\rtext" }));
    expect(text.split("\n").at(-1)).toBe("    SUMMARY: evil^[[2J\\rtext");
  });

  test("dict - responses without a time say N/A; empty responses print nothing", () => {
    const noTime = create(GetFlowsResponseSchema, {
      responseTypes: { case: "flow", value: create(FlowSchema, tcp) },
    });
    expect(formatDict(noTime).split("\n")[0]).toBe("  TIMESTAMP: N/A");
    expect(formatDict(create(GetFlowsResponseSchema, {}))).toBe("");
  });
});

describe("table format (hubble observe -o table)", () => {
  test("table - rows align like Go's tabwriter (padding 3), lost events with dashes", () => {
    const rows = [tableHeader(), tableRow(flowResponse(tcp)) ?? [], tableRow(lostResponse) ?? []];
    expect(alignColumns(rows)).toEqual([
      "TIMESTAMP             SOURCE                   DESTINATION     TYPE          VERDICT     SUMMARY",
      "Nov 22 02:50:01.123   demo/frontend:34567      10.200.0.3:80   to-network    FORWARDED   TCP Flags: SYN",
      "Nov 22 02:50:01.123   PERF_EVENT_RING_BUFFER   -               EVENTS LOST   -           CPU(3) - 42 (first: Nov 22 02:50:00.000, last: Nov 22 02:50:01.123)",
    ]);
  });

  test("table - --print-node-name adds the NODE column", () => {
    expect(tableHeader({ nodeName: true })[1]).toBe("NODE");
    expect(tableRow(flowResponse(tcp), { nodeName: true })?.[1]).toBe("node-1");
  });
});
