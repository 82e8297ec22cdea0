import { expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { FieldMaskSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import {
  DropReason,
  FlowBatchSchema,
  FlowFilterSchema,
  FlowSchema,
  FlowType,
  GetFlowsRequestSchema,
  GetFlowsResponseSchema,
  IPVersion,
  LostEventSchema,
  LostEventSource,
  Observer,
  TraceObservationPoint,
  TraceReason,
  TrafficDirection,
  Verdict,
} from "./index.ts";
import { asString, fieldAt, WireType } from "./testing/wire-reader.ts";

// Field numbers below are Hubble's (cilium api/v1/flow, observer, relay);
// a mismatch here means real Hubble clients would misread our messages.

const flow = create(FlowSchema, {
  time: create(TimestampSchema, { seconds: 1_700_000_000n, nanos: 5 }),
  uuid: "8c3e2f0a-0000-4000-8000-000000000001",
  verdict: Verdict.DROPPED,
  ethernet: { source: "02:00:00:00:00:01", destination: "02:00:00:00:00:02" },
  IP: { source: "10.0.0.1", destination: "10.0.0.2", ipVersion: IPVersion.IPv4, encrypted: true },
  l4: {
    protocol: {
      case: "TCP",
      value: { sourcePort: 40000, destinationPort: 80, flags: { SYN: true, ACK: true } },
    },
  },
  source: {
    ID: 7,
    identity: 1234,
    namespace: "default",
    labels: ["app=web"],
    podName: "web-0",
    clusterName: "c1",
  },
  destination: { podName: "db-0", namespace: "prod" },
  Type: FlowType.L3_L4,
  nodeName: "node-a",
  nodeLabels: ["zone=a"],
  sourceNames: ["web.example."],
  l7: { latencyNs: 99n, record: { case: "dns", value: { query: "example.com." } } },
  eventType: { type: 4, subType: 3 },
  trafficDirection: TrafficDirection.EGRESS,
  traceObservationPoint: TraceObservationPoint.TO_ENDPOINT,
  traceReason: TraceReason.ESTABLISHED,
  dropReasonDesc: DropReason.POLICY_DENIED,
  isReply: false,
  interface: { index: 3, name: "eth0" },
  socketCookie: 42n,
  Summary: "TCP Flags: SYN, ACK",
  egressDeniedBy: [{ name: "deny-all" }],
});

type Expected = { string: string } | { varint: bigint };

const flowTable: [string, number[], Expected][] = [
  ["time.seconds", [1, 1], { varint: 1_700_000_000n }],
  ["time.nanos", [1, 2], { varint: 5n }],
  ["verdict", [2], { varint: 2n }],
  ["ethernet.source", [4, 1], { string: "02:00:00:00:00:01" }],
  ["ethernet.destination", [4, 2], { string: "02:00:00:00:00:02" }],
  ["IP.source", [5, 1], { string: "10.0.0.1" }],
  ["IP.destination", [5, 2], { string: "10.0.0.2" }],
  ["IP.ipVersion", [5, 3], { varint: 1n }],
  ["IP.encrypted", [5, 4], { varint: 1n }],
  ["l4.TCP.source_port", [6, 1, 1], { varint: 40000n }],
  ["l4.TCP.destination_port", [6, 1, 2], { varint: 80n }],
  ["l4.TCP.flags.SYN", [6, 1, 3, 2], { varint: 1n }],
  ["l4.TCP.flags.ACK", [6, 1, 3, 5], { varint: 1n }],
  ["source.ID", [8, 1], { varint: 7n }],
  ["source.identity", [8, 2], { varint: 1234n }],
  ["source.namespace", [8, 3], { string: "default" }],
  ["source.labels", [8, 4], { string: "app=web" }],
  ["source.pod_name", [8, 5], { string: "web-0" }],
  ["source.cluster_name", [8, 7], { string: "c1" }],
  ["destination.pod_name", [9, 5], { string: "db-0" }],
  ["Type", [10], { varint: 1n }],
  ["node_name", [11], { string: "node-a" }],
  ["source_names", [13], { string: "web.example." }],
  ["l7.latency_ns", [15, 2], { varint: 99n }],
  ["l7.dns.query", [15, 100, 1], { string: "example.com." }],
  ["event_type.type", [19, 1], { varint: 4n }],
  ["event_type.sub_type", [19, 2], { varint: 3n }],
  ["traffic_direction", [22], { varint: 2n }],
  ["trace_observation_point", [24], { varint: 101n }],
  ["drop_reason_desc", [25], { varint: 133n }],
  ["interface.index", [28, 1], { varint: 3n }],
  ["interface.name", [28, 2], { string: "eth0" }],
  ["socket_cookie", [32], { varint: 42n }],
  ["uuid", [34], { string: "8c3e2f0a-0000-4000-8000-000000000001" }],
  ["trace_reason", [36], { varint: 2n }],
  ["node_labels", [37], { string: "zone=a" }],
  ["Summary", [100000], { string: "TCP Flags: SYN, ACK" }],
  ["egress_denied_by.name", [21004, 1], { string: "deny-all" }],
];

function expectField(bytes: Uint8Array, path: number[], expected: Expected): void {
  const field = fieldAt(bytes, path);
  if ("string" in expected) {
    expect(field.wireType).toBe(WireType.len);
    expect(asString(field)).toBe(expected.string);
  } else {
    expect(field.wireType).toBe(WireType.varint);
    expect(field.varint).toBe(expected.varint);
  }
}

const flowBytes = toBinary(FlowSchema, flow);

test.each(flowTable)("proto wire - Flow.%s has Hubble's field number", (_name, path, expected) => {
  expectField(flowBytes, path, expected);
});

test("proto wire - Flow.is_reply false is still present as a BoolValue", () => {
  const field = fieldAt(flowBytes, [26]);
  expect(field.wireType).toBe(WireType.len);
  // An explicit false wrapper is an empty message, distinct from absent.
  expect(field.bytes?.length).toBe(0);
});

const request = create(GetFlowsRequestSchema, {
  number: 20n,
  first: true,
  follow: true,
  blacklist: [{ sourcePod: ["kube-system/"] }],
  whitelist: [
    create(FlowFilterSchema, {
      verdict: [Verdict.DROPPED],
      destinationPort: ["53"],
      experimental: { celExpression: ["_flow.verdict == 2"] },
    }),
  ],
  since: create(TimestampSchema, { seconds: 10n }),
  until: create(TimestampSchema, { seconds: 20n }),
  fieldMask: create(FieldMaskSchema, { paths: ["source.pod_name"] }),
});
const requestTable: [string, number[], Expected][] = [
  ["number", [1], { varint: 20n }],
  ["follow", [3], { varint: 1n }],
  ["blacklist.source_pod", [5, 2], { string: "kube-system/" }],
  // repeated enums are packed: one length-delimited field holding varint 2
  ["whitelist.verdict", [6, 5], { string: "\u0002" }],
  ["whitelist.destination_port", [6, 14], { string: "53" }],
  ["whitelist.experimental.cel_expression", [6, 999, 1], { string: "_flow.verdict == 2" }],
  ["since.seconds", [7, 1], { varint: 10n }],
  ["until.seconds", [8, 1], { varint: 20n }],
  ["first", [9], { varint: 1n }],
  ["field_mask.paths", [10, 1], { string: "source.pod_name" }],
];
const requestBytes = toBinary(GetFlowsRequestSchema, request);

test.each(requestTable)(
  "proto wire - GetFlowsRequest.%s has Hubble's field number",
  (_n, path, expected) => {
    expectField(requestBytes, path, expected);
  },
);

const lost = create(LostEventSchema, {
  source: LostEventSource.PERF_EVENT_RING_BUFFER,
  numEventsLost: 17n,
  cpu: 1,
});
const response = create(GetFlowsResponseSchema, {
  responseTypes: { case: "lostEvents", value: lost },
  nodeName: "node-a",
  time: create(TimestampSchema, { seconds: 30n }),
});
const batchBytes = toBinary(
  FlowBatchSchema,
  create(FlowBatchSchema, {
    responses: [
      response,
      create(GetFlowsResponseSchema, { responseTypes: { case: "flow", value: flow } }),
    ],
  }),
);
const batchTable: [string, number[], Expected][] = [
  ["responses.lost_events.source", [1, 3, 1], { varint: 1n }],
  ["responses.lost_events.num_events_lost", [1, 3, 2], { varint: 17n }],
  ["responses.lost_events.cpu.value", [1, 3, 3, 1], { varint: 1n }],
  ["responses.node_name", [1, 1000], { string: "node-a" }],
  ["responses.time.seconds", [1, 1001, 1], { varint: 30n }],
];

test.each(batchTable)(
  "proto wire - FlowBatch.%s has Hubble's field number",
  (_n, path, expected) => {
    expectField(batchBytes, path, expected);
  },
);

test("proto wire - GetFlowsResponse.flow is field 1", () => {
  const second = toBinary(
    GetFlowsResponseSchema,
    create(GetFlowsResponseSchema, { responseTypes: { case: "flow", value: flow } }),
  );
  expectField(second, [1, 8, 5], { string: "web-0" });
});

test.each([
  ["Verdict.FORWARDED", Verdict.FORWARDED, 1],
  ["Verdict.DROPPED", Verdict.DROPPED, 2],
  ["Verdict.TRANSLATED", Verdict.TRANSLATED, 7],
  ["TraceObservationPoint.TO_ENDPOINT", TraceObservationPoint.TO_ENDPOINT, 101],
  ["TraceObservationPoint.FROM_NETWORK", TraceObservationPoint.FROM_NETWORK, 10],
  ["TraceObservationPoint.TO_NETWORK", TraceObservationPoint.TO_NETWORK, 11],
  ["DropReason.POLICY_DENIED", DropReason.POLICY_DENIED, 133],
  ["DropReason.DROP_EP_NOT_READY", DropReason.DROP_EP_NOT_READY, 203],
  ["FlowType.L3_L4", FlowType.L3_L4, 1],
  ["FlowType.SOCK", FlowType.SOCK, 3],
  ["TrafficDirection.INGRESS", TrafficDirection.INGRESS, 1],
  ["LostEventSource.HUBBLE_RING_BUFFER", LostEventSource.HUBBLE_RING_BUFFER, 3],
  ["IPVersion.IPv6", IPVersion.IPv6, 2],
])("proto wire - enum %s is %d", (_name, actual, expected) => {
  expect(actual).toBe(expected);
});

test("proto wire - Observer service has Hubble's name and methods", () => {
  expect(Observer.typeName).toBe("observer.Observer");
  const methods = Object.fromEntries(Observer.methods.map((m) => [m.name, m.methodKind]));
  expect(methods).toEqual({
    GetFlows: "server_streaming",
    GetAgentEvents: "server_streaming",
    GetDebugEvents: "server_streaming",
    GetNodes: "unary",
    GetNamespaces: "unary",
    ServerStatus: "unary",
  });
});
