import { describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type Flow,
  type FlowFilter,
  FlowFilterSchema,
  FlowSchema,
  IPVersion,
  TrafficDirection,
  Verdict,
} from "@periscope/proto";
import { compileFilters } from "./compile.ts";
import { FilterError } from "./errors.ts";

type FilterInit = MessageInitShape<typeof FlowFilterSchema>;
const ff = (init: FilterInit): FlowFilter => create(FlowFilterSchema, init);

const synFlags = { SYN: true };
/** frontend -> backend TCP SYN to port 80, forwarded, egress, on node-1. */
const tcpFlow: Flow = create(FlowSchema, {
  uuid: "u-tcp",
  verdict: Verdict.FORWARDED,
  nodeName: "node-1",
  IP: { source: "10.200.0.2", destination: "10.200.0.3", ipVersion: IPVersion.IPv4 },
  l4: {
    protocol: { case: "TCP", value: { sourcePort: 34567, destinationPort: 80, flags: synFlags } },
  },
  source: {
    namespace: "demo",
    podName: "frontend-7d9f",
    labels: ["k8s:app=frontend", "tier=web"],
    identity: 1001,
  },
  destination: {
    namespace: "demo",
    podName: "backend-1",
    labels: ["k8s:app=backend"],
    identity: 1002,
  },
  eventType: { type: 4, subType: 11 },
  trafficDirection: TrafficDirection.EGRESS,
  isReply: false,
  interface: { index: 7, name: "veth-demo" },
  sourceNames: [],
  destinationNames: ["api.example.com"],
});
/** 2001:db8::1 -> fd00:200::3 UDP 53, dropped, ingress, on node-2, direction unknown. */
const udpFlow: Flow = create(FlowSchema, {
  uuid: "u-udp",
  verdict: Verdict.DROPPED,
  nodeName: "node-2",
  IP: { source: "2001:db8::1", destination: "fd00:200::3", ipVersion: IPVersion.IPv6 },
  l4: { protocol: { case: "UDP", value: { sourcePort: 5353, destinationPort: 53 } } },
  source: {},
  destination: { namespace: "kube-system", podName: "coredns-x", labels: ["k8s-app=kube-dns"] },
  eventType: { type: 1, subType: 133 },
  trafficDirection: TrafficDirection.INGRESS,
});
/** ICMPv4 echo, no endpoints known. */
const icmpFlow: Flow = create(FlowSchema, {
  uuid: "u-icmp",
  verdict: Verdict.FORWARDED,
  nodeName: "prod/node-3",
  IP: { source: "192.168.1.5", destination: "10.200.0.2", ipVersion: IPVersion.IPv4 },
  l4: { protocol: { case: "ICMPv4", value: { type: 8, code: 0 } } },
  eventType: { type: 4, subType: 10 },
});
const flows = { tcp: tcpFlow, udp: udpFlow, icmp: icmpFlow };
type Name = keyof typeof flows;

function passing(white: FilterInit[], black: FilterInit[] = []): Name[] {
  const pass = compileFilters(white.map(ff), black.map(ff));
  return (Object.keys(flows) as Name[]).filter((n) => pass(flows[n]));
}

describe("filters", () => {
  const cases: [string, FilterInit[], FilterInit[], Name[]][] = [
    ["no filters pass everything", [], [], ["tcp", "udp", "icmp"]],
    ["an empty whitelist filter passes everything", [{}], [], ["tcp", "udp", "icmp"]],
    ["exact source ip", [{ sourceIp: ["10.200.0.2"] }], [], ["tcp"]],
    ["ipv4 cidr", [{ destinationIp: ["10.200.0.0/24"] }], [], ["tcp", "icmp"]],
    ["ipv6 cidr", [{ sourceIp: ["2001:db8::/32"] }], [], ["udp"]],
    ["ipv6 exact in another spelling", [{ destinationIp: ["fd00:200:0:0::3"] }], [], ["udp"]],
    ["ipv4 cidr never matches ipv6", [{ sourceIp: ["0.0.0.0/0"] }], [], ["tcp", "icmp"]],
    ["namespace only pod filter", [{ destinationPod: ["demo/"] }], [], ["tcp"]],
    ["namespace and pod prefix", [{ sourcePod: ["demo/front"] }], [], ["tcp"]],
    ["pod prefix in another namespace", [{ sourcePod: ["other/front"] }], [], []],
    ["pod without namespace means default", [{ sourcePod: ["frontend"] }], [], []],
    ["all namespaces", [{ destinationPod: ["/"] }], [], ["tcp", "udp"]],
    ["label key=value across sources", [{ sourceLabel: ["app=frontend"] }], [], ["tcp"]],
    ["label with source prefix", [{ sourceLabel: ["k8s:app=frontend"] }], [], ["tcp"]],
    ["label with wrong source prefix", [{ sourceLabel: ["container:app=frontend"] }], [], []],
    ["label exists", [{ destinationLabel: ["k8s-app"] }], [], ["udp"]],
    [
      "label set and conjunction",
      [{ sourceLabel: ["app in (frontend, x), tier=web"] }],
      [],
      ["tcp"],
    ],
    ["label not-equals", [{ destinationLabel: ["app!=backend"] }], [], ["udp", "icmp"]],
    ["protocol tcp", [{ protocol: ["TCP"] }], [], ["tcp"]],
    ["protocol icmp matches v4 and v6", [{ protocol: ["icmp"] }], [], ["icmp"]],
    ["protocol list is OR", [{ protocol: ["udp", "icmpv4"] }], [], ["udp", "icmp"]],
    ["protocol http needs l7", [{ protocol: ["http"] }], [], []],
    ["destination port", [{ destinationPort: ["80", "53"] }], [], ["tcp", "udp"]],
    ["source port", [{ sourcePort: ["5353"] }], [], ["udp"]],
    ["verdict", [{ verdict: [Verdict.DROPPED] }], [], ["udp"]],
    ["event type", [{ eventType: [{ type: 4 }] }], [], ["tcp", "icmp"]],
    [
      "event type with sub type",
      [{ eventType: [{ type: 4, matchSubType: true, subType: 10 }] }],
      [],
      ["icmp"],
    ],
    ["node name exact", [{ nodeName: ["node-1"] }], [], ["tcp"]],
    ["node name wildcard", [{ nodeName: ["node-*"] }], [], ["tcp", "udp", "icmp"]],
    ["node name with cluster", [{ nodeName: ["prod/*"] }], [], ["icmp"]],
    ["traffic direction", [{ trafficDirection: [TrafficDirection.INGRESS] }], [], ["udp"]],
    ["ip version", [{ ipVersion: [IPVersion.IPv6] }], [], ["udp"]],
    ["tcp flags subset", [{ tcpFlags: [{ SYN: true }] }], [], ["tcp"]],
    ["tcp flags not set", [{ tcpFlags: [{ SYN: true, ACK: true }] }], [], []],
    ["reply false: unknown counts as false on drops", [{ reply: [false] }], [], ["tcp", "udp"]],
    ["uuid", [{ uuid: ["u-icmp"] }], [], ["icmp"]],
    ["identity", [{ sourceIdentity: [1001] }], [], ["tcp"]],
    ["fqdn pattern", [{ destinationFqdn: ["*.example.com"] }], [], ["tcp"]],
    ["interface", [{ interface: [{ name: "veth-demo" }] }], [], ["tcp"]],
    ["fields in one filter are ANDed", [{ protocol: ["tcp"], verdict: [Verdict.DROPPED] }], [], []],
    [
      "filters in the whitelist are ORed",
      [{ protocol: ["tcp"] }, { verdict: [Verdict.DROPPED] }],
      [],
      ["tcp", "udp"],
    ],
    ["blacklist alone removes matches", [], [{ protocol: ["udp"] }], ["tcp", "icmp"]],
    [
      "blacklist wins over whitelist",
      [{ ipVersion: [IPVersion.IPv4] }],
      [{ destinationPort: ["80"] }],
      ["icmp"],
    ],
    ["blacklist filters are ORed", [], [{ protocol: ["udp"] }, { uuid: ["u-icmp"] }], ["tcp"]],
  ];
  test.each(cases)("filters - %s", (_name, white, black, expected) => {
    expect(passing(white, black)).toEqual(expected);
  });

  const invalid: [string, FilterInit, string, string][] = [
    ["a bad source ip", { sourceIp: ["10.0.0.300"] }, "source_ip", '"10.0.0.300"'],
    ["a bad cidr", { destinationIp: ["10.0.0.0/33"] }, "destination_ip", '"10.0.0.0/33"'],
    ["a bad ipv6", { sourceIp: ["fd00:::1"] }, "source_ip", '"fd00:::1"'],
    ["a port above 65535", { destinationPort: ["65536"] }, "destination_port", '"65536"'],
    ["a non-numeric port", { sourcePort: ["http"] }, "source_port", '"http"'],
    ["a negative port", { sourcePort: ["-1"] }, "source_port", '"-1"'],
    ["an unknown protocol", { protocol: ["tcp", "quic"] }, "protocol", '"quic"'],
    ["an empty pod filter", { sourcePod: [""] }, "source_pod", '""'],
    ["a pod filter with two slashes", { destinationPod: ["a/b/c"] }, "destination_pod", '"a/b/c"'],
    ["a bad label selector", { sourceLabel: ["app=(x"] }, "source_label", '"app=(x"'],
    ["a bad node name", { nodeName: ["a/b/c"] }, "node_name", "too many slashes"],
    ["a bad fqdn", { sourceFqdn: ["bad name"] }, "source_fqdn", "invalid character"],
    [
      "a CEL expression that is not boolean",
      { experimental: { celExpression: ["_flow.verdict"] } },
      "experimental.cel_expression",
      "must return bool",
    ],
  ];
  test.each(invalid)("filters - rejects %s", (_name, init, field, inMessage) => {
    let caught: unknown;
    try {
      compileFilters([], [ff(init)]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FilterError);
    const err = caught as FilterError;
    expect(err.name).toBe("FilterError");
    expect(err.field).toBe(field);
    expect(err.message).toContain(field);
    expect(err.message).toContain(inMessage);
  });
});
