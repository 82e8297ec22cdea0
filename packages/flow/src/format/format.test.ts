import { describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  FlowSchema,
  GetFlowsResponseSchema,
  L7FlowType,
  LostEventSource,
  NodeState,
  TrafficDirection,
  Verdict,
} from "@periscope/proto";
import { formatCompact } from "./compact.ts";
import { formatJson } from "./json.ts";
import { formatTimestamp } from "./time.ts";

type FlowInit = MessageInitShape<typeof FlowSchema>;

// 2024-11-22T02:50:01.123456789Z
const TIME = { seconds: 1_732_243_801n, nanos: 123_456_789 };

const base: FlowInit = {
  time: TIME,
  uuid: "u-1",
  verdict: Verdict.FORWARDED,
  nodeName: "node-1",
  IP: { source: "10.200.0.2", destination: "10.200.0.3", ipVersion: 1 },
  l4: {
    protocol: {
      case: "TCP",
      value: { sourcePort: 34567, destinationPort: 80, flags: { SYN: true } },
    },
  },
  source: { namespace: "demo", podName: "frontend", identity: 1001 },
  destination: { namespace: "demo", podName: "backend", identity: 1002 },
  eventType: { type: 4, subType: 11 },
  isReply: false,
  Summary: "TCP Flags: SYN",
};

const flowResp = (init: FlowInit) =>
  create(GetFlowsResponseSchema, {
    responseTypes: { case: "flow", value: create(FlowSchema, init) },
  });

describe("format", () => {
  test.each<[string, FlowInit, string]>([
    [
      "a request",
      base,
      "Nov 22 02:50:01.123: demo/frontend:34567 (ID:1001) -> demo/backend:80 (ID:1002) to-network FORWARDED (TCP Flags: SYN)",
    ],
    [
      "a reply with swapped ends",
      { ...base, isReply: true, Summary: "TCP Flags: SYN, ACK" },
      "Nov 22 02:50:01.123: demo/backend:80 (ID:1002) <- demo/frontend:34567 (ID:1001) to-network FORWARDED (TCP Flags: SYN, ACK)",
    ],
    [
      "an unknown direction and unknown endpoints",
      {
        ...base,
        isReply: undefined,
        source: {},
        destination: { identity: 2 },
        eventType: { type: 4, subType: 10 },
      },
      "Nov 22 02:50:01.123: 10.200.0.2:34567 (unknown) <> 10.200.0.3:80 (world) from-network FORWARDED (TCP Flags: SYN)",
    ],
    [
      "ipv6 without translation of ports",
      {
        ...base,
        IP: { source: "fd00:200::2", destination: "fd00:200::3", ipVersion: 2 },
        source: {},
        destination: {},
        l4: { protocol: { case: "UDP", value: { sourcePort: 5353, destinationPort: 53 } } },
        Summary: "UDP",
      },
      "Nov 22 02:50:01.123: [fd00:200::2]:5353 (unknown) -> [fd00:200::3]:53 (unknown) to-network FORWARDED (UDP)",
    ],
    [
      "icmp without ports, single-digit day padded",
      {
        ...base,
        time: { seconds: 1_730_429_400n, nanos: 5_000_000 }, // 2024-11-01T02:50:00.005Z
        l4: { protocol: { case: "ICMPv4", value: { type: 8, code: 0 } } },
        Summary: "ICMPv4 EchoRequest",
      },
      "Nov  1 02:50:00.005: demo/frontend (ID:1001) -> demo/backend (ID:1002) to-network FORWARDED (ICMPv4 EchoRequest)",
    ],
    [
      "non-IP flows by MAC",
      {
        ...base,
        IP: undefined,
        l4: undefined,
        ethernet: { source: "0a:00:00:00:00:0a", destination: "ff:ff:ff:ff:ff:ff" },
        Summary: "ARP Request who-has 10.200.0.3 tell 10.200.0.2",
      },
      "Nov 22 02:50:01.123: 0a:00:00:00:00:0a (ID:1001) -> ff:ff:ff:ff:ff:ff (ID:1002) to-network FORWARDED (ARP Request who-has 10.200.0.3 tell 10.200.0.2)",
    ],
    [
      "a policy verdict",
      {
        ...base,
        eventType: { type: 5, subType: 0 },
        policyMatchType: 2,
        trafficDirection: TrafficDirection.INGRESS,
        verdict: Verdict.DROPPED,
      },
      "Nov 22 02:50:01.123: demo/frontend:34567 (ID:1001) -> demo/backend:80 (ID:1002) policy-verdict:L3-L4 INGRESS DENIED (TCP Flags: SYN)",
    ],
    [
      "an http request with DNS names",
      {
        ...base,
        destination: {},
        destinationNames: ["api.example.com"],
        l7: { type: L7FlowType.REQUEST, record: { case: "http", value: { method: "GET" } } },
        Summary: "HTTP/1.1 GET http://api.example.com/",
      },
      "Nov 22 02:50:01.123: demo/frontend:34567 (ID:1001) -> api.example.com:80 (unknown) http-request FORWARDED (HTTP/1.1 GET http://api.example.com/)",
    ],
    [
      "a missing timestamp",
      { ...base, time: undefined },
      "N/A: demo/frontend:34567 (ID:1001) -> demo/backend:80 (ID:1002) to-network FORWARDED (TCP Flags: SYN)",
    ],
  ])("format - compact line for %s", (_name, init, line) => {
    expect(formatCompact(flowResp(init))).toBe(line);
  });

  test("format - compact with node name, RFC3339 and no IP translation", () => {
    expect(
      formatCompact(flowResp(base), {
        nodeName: true,
        timestamps: "RFC3339",
        ipTranslation: false,
      }),
    ).toBe(
      "2024-11-22T02:50:01Z [node-1]: 10.200.0.2:34567 (ID:1001) -> 10.200.0.3:80 (ID:1002) to-network FORWARDED (TCP Flags: SYN)",
    );
  });

  test("format - compact lost events carry the time, CPU, count and first/last", () => {
    const resp = create(GetFlowsResponseSchema, {
      time: TIME,
      responseTypes: {
        case: "lostEvents",
        value: { source: LostEventSource.PERF_EVENT_RING_BUFFER, numEventsLost: 42n, cpu: 3 },
      },
    });
    expect(formatCompact(resp)).toBe(
      "Nov 22 02:50:01.123 EVENTS LOST: PERF_EVENT_RING_BUFFER CPU(3) 42",
    );
    const withRange = create(GetFlowsResponseSchema, {
      time: TIME,
      responseTypes: {
        case: "lostEvents",
        value: {
          source: LostEventSource.OBSERVER_EVENTS_QUEUE,
          numEventsLost: 7n,
          first: { seconds: 1_732_243_800n, nanos: 0 },
          last: TIME,
        },
      },
    });
    expect(formatCompact(withRange)).toBe(
      "Nov 22 02:50:01.123 EVENTS LOST: OBSERVER_EVENTS_QUEUE CPU(0) 7 (first: Nov 22 02:50:00.000, last: Nov 22 02:50:01.123)",
    );
  });

  test("format - compact colors hosts, ports, identities and verdict with --color always", () => {
    expect(formatCompact(flowResp(base), { color: true })).toBe(
      "Nov 22 02:50:01.123: \x1b[36mdemo/frontend:\x1b[33m34567\x1b[0m\x1b[0m \x1b[35m(ID:1001)\x1b[0m -> \x1b[36mdemo/backend:\x1b[33m80\x1b[0m\x1b[0m \x1b[35m(ID:1002)\x1b[0m to-network \x1b[32mFORWARDED\x1b[0m (TCP Flags: SYN)",
    );
  });

  test("format - --print-policy-names adds the policies after ALLOWED/DENIED", () => {
    const verdict = {
      ...base,
      eventType: { type: 5, subType: 0 },
      policyMatchType: 2,
      trafficDirection: TrafficDirection.EGRESS,
      egressAllowedBy: [
        { name: "allow-web", namespace: "demo", kind: "CiliumNetworkPolicy" },
        { name: "", kind: "" },
        { name: "base", kind: "CiliumClusterwideNetworkPolicy" },
      ],
    };
    expect(formatCompact(flowResp(verdict), { policyNames: true })).toContain(
      "policy-verdict:L3-L4 EGRESS ALLOWED BY allow-web (CiliumNetworkPolicy), base (CiliumClusterwideNetworkPolicy) (",
    );
    expect(formatCompact(flowResp(verdict))).toContain("EGRESS ALLOWED (");
  });

  test("format - compact escapes terminal control in flow fields", () => {
    expect(formatCompact(flowResp({ ...base, Summary: "a\x1b]0;title\x07\rb" }))).toEndWith(
      "(a^[]0;title\x07\\rb)",
    );
  });

  test.each([
    ["YearMonthDay", "2024-11-22"],
    ["YearMonthDayHour", "2024-11-22T02Z"],
    ["YearMonthDayHourMinute", "2024-11-22T02:50Z"],
    ["RFC1123Z", "Fri, 22 Nov 2024 02:50:01 +0000"],
  ] as const)("format - timestamp layout %s", (layout, text) => {
    expect(formatTimestamp({ ...TIME, $typeName: "google.protobuf.Timestamp" }, layout)).toBe(text);
  });

  test("format - RFC3339Milli trims trailing zeros as Go's .999 does", () => {
    const ts = {
      seconds: 1_732_243_801n,
      nanos: 120_000_000,
      $typeName: "google.protobuf.Timestamp",
    } as const;
    expect(formatTimestamp(ts, "RFC3339Milli")).toBe("2024-11-22T02:50:01.12Z");
    expect(formatTimestamp({ ...ts, nanos: 0 }, "RFC3339Nano")).toBe("2024-11-22T02:50:01Z");
  });

  test("format - json escapes <, > and & as Go's encoder does", () => {
    expect(formatJson(flowResp({ ...base, Summary: "<a&b>" }))).toContain(
      '"Summary":"\\u003ca\\u0026b\\u003e"',
    );
  });

  test("format - compact node status", () => {
    const resp = create(GetFlowsResponseSchema, {
      nodeName: "relay",
      time: TIME,
      responseTypes: {
        case: "nodeStatus",
        value: { stateChange: NodeState.NODE_CONNECTED, nodeNames: ["node-1", "node-2"] },
      },
    });
    expect(formatCompact(resp)).toBe(
      "Nov 22 02:50:01.123 [relay]: Receiving flows from 2 nodes: node-1, node-2",
    );
  });

  test.each([
    ["StampMilli", "Nov 22 02:50:01.123"],
    ["RFC3339", "2024-11-22T02:50:01Z"],
    ["RFC3339Milli", "2024-11-22T02:50:01.123Z"],
    ["RFC3339Micro", "2024-11-22T02:50:01.123456Z"],
    ["RFC3339Nano", "2024-11-22T02:50:01.123456789Z"],
  ] as const)("format - timestamp layout %s", (layout, text) => {
    expect(formatTimestamp({ ...TIME, $typeName: "google.protobuf.Timestamp" }, layout)).toBe(text);
  });

  test("format - json uses proto field names on one line", () => {
    const resp = flowResp(base);
    resp.nodeName = "node-1";
    const line = formatJson(resp);
    expect(line).not.toContain("\n");
    expect(JSON.parse(line)).toEqual({
      flow: {
        time: "2024-11-22T02:50:01.123456789Z",
        uuid: "u-1",
        verdict: "FORWARDED",
        IP: { source: "10.200.0.2", destination: "10.200.0.3", ipVersion: "IPv4" },
        l4: { TCP: { source_port: 34567, destination_port: 80, flags: { SYN: true } } },
        source: { identity: 1001, namespace: "demo", pod_name: "frontend" },
        destination: { identity: 1002, namespace: "demo", pod_name: "backend" },
        node_name: "node-1",
        event_type: { type: 4, sub_type: 11 },
        is_reply: false,
        Summary: "TCP Flags: SYN",
      },
      node_name: "node-1",
    });
  });
});
