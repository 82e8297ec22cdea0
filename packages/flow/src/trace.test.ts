import { describe, expect, test } from "bun:test";
import { toJson } from "@bufbuild/protobuf";
import {
  FlowSchema,
  FlowType,
  IPVersion,
  TraceObservationPoint,
  TraceReason,
  TrafficDirection,
  Verdict,
} from "@periscope/proto";
import { ethernet, icmp, ipv4, ipv6, sctp, tcp, udp } from "@periscope/testing";
import {
  decodeTraceRecord,
  encodeTraceRecord,
  FLAG_L3,
  TRACE_REASON,
  TRACE_VERSION,
  type TraceRecord,
} from "@periscope/wire";
import { PacketDecodeError } from "./packet/errors.ts";
import { type DecodeContext, decodeTraceFlow } from "./trace.ts";

const MAC_A = "0a:00:00:00:00:0a";
const MAC_B = "0b:00:00:00:00:0b";

function record(
  data: Uint8Array,
  obsPoint = 11,
  ifindex = 7,
  over: { traceReason?: number; flags?: number } = {},
): TraceRecord {
  return decodeTraceRecord(
    encodeTraceRecord({
      type: 4,
      obsPoint,
      version: TRACE_VERSION,
      flags: over.flags ?? 0,
      ...(over.traceReason === undefined ? {} : { traceReason: over.traceReason }),
      cpu: 1,
      origLen: data.length,
      tsBootNs: 5_000_000_123n,
      ifindex,
      mark: 0,
      flowHash: 0,
      l3Proto: 0x0800,
      pktType: 0,
      netnsCookie: 4096n,
      data,
    }),
  );
}

const endpoints: Record<
  string,
  { namespace: string; podName: string; labels: string[]; id: number; identity: number }
> = {
  "10.200.0.2": {
    namespace: "demo",
    podName: "frontend",
    labels: ["app=frontend", "tier=web"],
    id: 11,
    identity: 1001,
  },
  "10.200.0.3": {
    namespace: "demo",
    podName: "backend",
    labels: ["app=backend"],
    id: 12,
    identity: 1002,
  },
};

const ctx: DecodeContext = {
  nodeName: "node-1",
  // 2024-11-22T02:50:00Z minus the 5.000000123 s boot stamp
  bootToRealtimeNs: 1_732_243_800_000_000_000n - 5_000_000_123n + 123_456_789n,
  endpoint: (ip) => endpoints[ip],
  // ifindex 7 is named only in the namespace the records come from
  ifName: (i, cookie) => (i === 7 && cookie === 4096n ? "veth-demo" : undefined),
  uuid: () => "00000000-0000-4000-8000-000000000001",
};

const v4 = (proto: number, l4: Uint8Array) =>
  ethernet(
    { src: MAC_A, dst: MAC_B, etherType: 0x0800 },
    ipv4({ src: "10.200.0.2", dst: "10.200.0.3", protocol: proto }, l4),
  );
const v6 = (proto: number, l4: Uint8Array, extensions: { type: number }[] = []) =>
  ethernet(
    { src: MAC_A, dst: MAC_B, etherType: 0x86dd },
    ipv6({ src: "fd00:200::2", dst: "fd00:200::3", nextHeader: proto, extensions }, l4),
  );

describe("trace flow", () => {
  test("trace flow - fills a TCP SYN flow like Hubble", () => {
    const flow = decodeTraceFlow(record(v4(6, tcp(34567, 80, ["SYN"]))), ctx);
    expect(toJson(FlowSchema, flow, { useProtoFieldName: true })).toEqual({
      time: "2024-11-22T02:50:00.123456789Z",
      uuid: "00000000-0000-4000-8000-000000000001",
      verdict: "FORWARDED",
      ethernet: { source: MAC_A, destination: MAC_B },
      IP: { source: "10.200.0.2", destination: "10.200.0.3", ipVersion: "IPv4" },
      l4: { TCP: { source_port: 34567, destination_port: 80, flags: { SYN: true } } },
      source: {
        ID: 11,
        identity: 1001,
        namespace: "demo",
        labels: ["app=frontend", "tier=web"],
        pod_name: "frontend",
      },
      destination: {
        ID: 12,
        identity: 1002,
        namespace: "demo",
        labels: ["app=backend"],
        pod_name: "backend",
      },
      Type: "L3_L4",
      node_name: "node-1",
      event_type: { type: 4, sub_type: 11 },
      traffic_direction: "EGRESS",
      trace_observation_point: "TO_NETWORK",
      interface: { index: 7, name: "veth-demo" },
      Summary: "TCP Flags: SYN",
    });
    expect(flow.isReply).toBeUndefined();
    expect(flow.reply).toBe(false);
    expect(flow.sourceNames).toEqual([]);
    expect(flow.destinationNames).toEqual([]);
    expect(flow.l7).toBeUndefined();
  });

  test.each([
    ["tcp syn-ack", v4(6, tcp(80, 34567, ["SYN", "ACK"])), "TCP Flags: SYN, ACK"],
    ["tcp fin-ack-psh", v4(6, tcp(80, 1, ["FIN", "PSH", "ACK"])), "TCP Flags: ACK, FIN, PSH"],
    ["tcp rst", v4(6, tcp(80, 1, ["RST"])), "TCP Flags: RST"],
    ["udp", v4(17, udp(5353, 53)), "UDP"],
    ["sctp", v4(132, sctp(1, 2)), "SCTP"],
    ["icmp echo request", v4(1, icmp(8, 0)), "ICMPv4 EchoRequest"],
    ["icmp echo reply", v4(1, icmp(0, 0)), "ICMPv4 EchoReply"],
    ["icmp port unreachable", v4(1, icmp(3, 3)), "ICMPv4 DestinationUnreachable(Port)"],
    ["icmp unknown code", v4(1, icmp(8, 5)), "ICMPv4 EchoRequest(Code: 5)"],
    ["icmp unknown type", v4(1, icmp(42, 1)), "ICMPv4 42(1)"],
    ["ipv6 tcp", v6(6, tcp(1, 2, ["ACK"])), "TCP Flags: ACK"],
    ["ipv6 hop-by-hop udp", v6(17, udp(1, 2), [{ type: 0 }]), "UDP"],
    ["icmpv6 echo request", v6(58, icmp(128, 0)), "ICMPv6 EchoRequest"],
    ["icmpv6 neighbor solicitation", v6(58, icmp(135, 0)), "ICMPv6 NeighborSolicitation"],
    ["ipv4 gre", v4(47, new Uint8Array(8)), "IPv4"],
    ["ipv6 no next header", v6(59, new Uint8Array(8)), "IPv6"],
    ["truncated tcp", v4(6, tcp(1, 2, ["SYN"])).subarray(0, 40), "IPv4"],
    ["lldp", ethernet({ etherType: 0x88cc }, new Uint8Array(30)), "Ethernet"],
  ])("trace flow - summarises %s as %p", (_name, data, summary) => {
    expect(decodeTraceFlow(record(data), ctx).Summary).toBe(summary);
  });

  test("trace flow - fills ICMPv6 and IPv6 fields", () => {
    const flow = decodeTraceFlow(record(v6(58, icmp(129, 0)), 10), ctx);
    expect(flow.IP?.ipVersion).toBe(IPVersion.IPv6);
    expect(flow.IP?.source).toBe("fd00:200::2");
    expect(flow.l4?.protocol).toEqual({
      case: "ICMPv6",
      value: expect.objectContaining({ type: 129, code: 0 }),
    });
    expect(flow.traceObservationPoint).toBe(TraceObservationPoint.FROM_NETWORK);
    expect(flow.trafficDirection).toBe(TrafficDirection.INGRESS);
    expect(flow.source?.podName).toBe("");
    expect(flow.verdict).toBe(Verdict.FORWARDED);
    expect(flow.Type).toBe(FlowType.L3_L4);
  });

  test.each([
    [0, TraceObservationPoint.TO_ENDPOINT],
    [1, TraceObservationPoint.TO_PROXY],
    [4, TraceObservationPoint.TO_OVERLAY],
    [5, TraceObservationPoint.FROM_ENDPOINT],
    [9, TraceObservationPoint.FROM_OVERLAY],
    [10, TraceObservationPoint.FROM_NETWORK],
    [11, TraceObservationPoint.TO_NETWORK],
    [200, TraceObservationPoint.UNKNOWN_POINT],
  ])("trace flow - maps sub-type %d to observation point %d", (sub, point) => {
    const flow = decodeTraceFlow(record(v4(17, udp(1, 2)), sub), ctx);
    expect(flow.traceObservationPoint).toBe(point);
    expect(flow.eventType?.subType).toBe(sub);
  });

  test("trace flow - leaves the interface unset for ifindex 0 and random uuids differ", () => {
    const bare: DecodeContext = { nodeName: "n", bootToRealtimeNs: 0n };
    const a = decodeTraceFlow(record(v4(17, udp(1, 2)), 11, 0), bare);
    const b = decodeTraceFlow(record(v4(17, udp(1, 2)), 11, 0), bare);
    expect(a.interface).toBeUndefined();
    expect(a.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.uuid).not.toBe(b.uuid);
    expect(a.time?.seconds).toBe(5n);
    expect(a.time?.nanos).toBe(123);
  });

  test.each([
    ["NEW", TRACE_REASON.NEW, TraceReason.NEW, false],
    ["ESTABLISHED", TRACE_REASON.ESTABLISHED, TraceReason.ESTABLISHED, false],
    ["REPLY", TRACE_REASON.REPLY, TraceReason.REPLY, true],
    ["RELATED", TRACE_REASON.RELATED, TraceReason.RELATED, false],
    ["REOPENED", TRACE_REASON.REOPENED, TraceReason.REOPENED, false],
    ["UNKNOWN", TRACE_REASON.UNKNOWN, TraceReason.TRACE_REASON_UNKNOWN, undefined],
  ] as const)(
    "trace flow - kernel reason %s sets trace_reason and is_reply",
    (_n, reason, want, reply) => {
      const flow = decodeTraceFlow(
        record(v4(6, tcp(80, 34567, ["ACK"])), 11, 7, { traceReason: reason }),
        ctx,
      );
      expect(flow.traceReason).toBe(want);
      expect(flow.isReply).toBe(reply);
      expect(flow.reply).toBe(reply === true);
    },
  );

  test("trace flow - an L3 record decodes from the IP header", () => {
    const ip = ipv4({ src: "10.200.0.2", dst: "10.200.0.3", protocol: 17 }, udp(5353, 53));
    const flow = decodeTraceFlow(record(ip, 10, 7, { flags: FLAG_L3 }), ctx);
    expect(flow.ethernet).toBeUndefined();
    expect(flow.IP?.source).toBe("10.200.0.2");
    expect(flow.IP?.destination).toBe("10.200.0.3");
    expect(flow.l4?.protocol.case).toBe("UDP");
    expect(flow.Summary).toBe("UDP");
    // the same bytes without the flag are not an Ethernet frame with IP in it
    expect(decodeTraceFlow(record(ip, 10, 7), ctx).IP).toBeUndefined();
  });

  test("trace flow - throws PacketDecodeError for a malformed packet", () => {
    expect(() => decodeTraceFlow(record(new Uint8Array(6)), ctx)).toThrow(PacketDecodeError);
  });
});
