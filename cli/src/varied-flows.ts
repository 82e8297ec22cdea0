/**
 * Varied GetFlowsResponses for tests that compare output paths: drops, policy verdicts,
 * L7 DNS/HTTP/Kafka, ICMP, IPv6, non-IP, services, names, policies, trace ids, escape
 * characters, lost events and node status changes. Deterministic in `i`.
 */
import { create } from "@bufbuild/protobuf";
import { MESSAGE_TYPE } from "@periscope/model";
import {
  AuthType,
  DropReason,
  FlowSchema,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
  L7FlowType,
  LostEventSource,
  NodeState,
  TrafficDirection,
  Verdict,
} from "@periscope/proto";

/** A small deterministic PRNG, so a failing flow can be found again. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The `i`th varied response (every 23rd a lost event, every 23rd + 6 a node status). */
export function varied(i: number): GetFlowsResponse {
  const r = rng(i + 1);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const time = { seconds: 1_732_243_801n + BigInt(i), nanos: Math.floor(r() * 1e9) };
  const kind = i % 23;
  if (kind === 7)
    return create(GetFlowsResponseSchema, {
      time,
      nodeName: "node-1",
      responseTypes: {
        case: "lostEvents",
        value: {
          source: pick([
            LostEventSource.PERF_EVENT_RING_BUFFER,
            LostEventSource.HUBBLE_RING_BUFFER,
          ]),
          numEventsLost: BigInt(i),
          ...(r() < 0.5 ? { cpu: i % 4 } : {}),
          ...(r() < 0.5 ? { first: time, last: time } : {}),
        },
      },
    });
  if (kind === 13)
    return create(GetFlowsResponseSchema, {
      time,
      nodeName: "node-2",
      responseTypes: {
        case: "nodeStatus",
        value: {
          stateChange: pick([NodeState.NODE_CONNECTED, NodeState.NODE_ERROR, NodeState.NODE_GONE]),
          nodeNames: ["node-1", "node-2"],
          message: "boom \x1b[31m",
        },
      },
    });
  const v6 = r() < 0.3;
  const proto = pick(["TCP", "UDP", "ICMPv4", "ICMPv6", "SCTP", "none"] as const);
  const l4 =
    proto === "TCP"
      ? {
          protocol: {
            case: "TCP" as const,
            value: {
              sourcePort: 1000 + i,
              destinationPort: 80,
              flags: { SYN: r() < 0.5, ACK: true },
            },
          },
        }
      : proto === "UDP"
        ? {
            protocol: {
              case: "UDP" as const,
              value: { sourcePort: 53000 + i, destinationPort: 53 },
            },
          }
        : proto === "SCTP"
          ? { protocol: { case: "SCTP" as const, value: { sourcePort: 9, destinationPort: 10 } } }
          : proto === "ICMPv4"
            ? { protocol: { case: "ICMPv4" as const, value: { type: 8, code: 0 } } }
            : proto === "ICMPv6"
              ? { protocol: { case: "ICMPv6" as const, value: { type: 128, code: 0 } } }
              : undefined;
  const l7kind = pick(["none", "none", "dns", "http", "kafka"] as const);
  const l7 =
    l7kind === "dns"
      ? {
          type: L7FlowType.RESPONSE,
          record: {
            case: "dns" as const,
            value: { query: "a.example.", observationSource: "proxy", rcode: 3 },
          },
        }
      : l7kind === "http"
        ? {
            type: L7FlowType.REQUEST,
            latencyNs: 5n,
            record: {
              case: "http" as const,
              value: { code: 200, method: "GET", url: "http://x/é" },
            },
          }
        : l7kind === "kafka"
          ? { type: L7FlowType.REQUEST, record: { case: "kafka" as const, value: { topic: "t" } } }
          : undefined;
  const policy = {
    name: `p${i}`,
    namespace: "demo",
    kind: r() < 0.8 ? "CiliumNetworkPolicy" : "",
    labels: ["x=y"],
  };
  const flow = create(FlowSchema, {
    time,
    uuid: `uuid-${i}`,
    verdict: pick([
      Verdict.FORWARDED,
      Verdict.DROPPED,
      Verdict.AUDIT,
      Verdict.ERROR,
      Verdict.TRANSLATED,
      Verdict.REDIRECTED,
      77,
    ]),
    dropReasonDesc: pick([
      DropReason.DROP_REASON_UNKNOWN,
      DropReason.POLICY_DENIED,
      DropReason.CT_MAP_INSERTION_FAILED,
    ]),
    extDropReasonDesc: r() < 0.1 ? "SKB_DROP_REASON_NETFILTER_DROP" : "",
    authType: pick([
      AuthType.DISABLED,
      AuthType.DISABLED,
      AuthType.SPIRE,
      AuthType.TEST_ALWAYS_FAIL,
    ]),
    ...(r() < 0.9
      ? {
          IP: {
            source: v6 ? `fd00::${i}` : `10.0.0.${i % 250}`,
            destination: v6 ? "fd00::1" : "10.0.1.1",
            ipVersion: v6 ? 2 : 1,
          },
        }
      : { ethernet: { source: "aa:bb:cc:dd:ee:ff", destination: "11:22:33:44:55:66" } }),
    ...(l4 ? { l4 } : {}),
    ...(l7 ? { l7 } : {}),
    source: {
      ID: i,
      identity: pick([0, 1, 2, 1001, 16777217]),
      namespace: r() < 0.7 ? "demo" : "",
      podName: r() < 0.6 ? `client-${i}` : "",
      labels: ["k8s:app=client", "k8s:io.kubernetes.pod.namespace=demo"],
      workloads: [{ name: "client", kind: "Deployment" }],
      clusterName: "default",
    },
    destination: {
      identity: pick([0, 2, 1002]),
      namespace: "demo",
      podName: r() < 0.5 ? "server" : "",
      labels: ["a=b"],
    },
    nodeName: pick(["node-1", "kind-worker"]),
    nodeLabels: ["zone=a"],
    sourceNames: r() < 0.2 ? ["a.example", "b.example"] : [],
    destinationNames: r() < 0.2 ? ["c.example"] : [],
    ...(r() < 0.3 ? { sourceService: { name: "svc", namespace: "demo" } } : {}),
    ...(r() < 0.3 ? { destinationService: { name: "backend", namespace: "" } } : {}),
    eventType: {
      type: pick([
        MESSAGE_TYPE.TRACE,
        MESSAGE_TYPE.DROP,
        MESSAGE_TYPE.POLICY_VERDICT,
        MESSAGE_TYPE.DEBUG,
        MESSAGE_TYPE.TRACE_SOCK,
        99,
      ]),
      subType: i % 14,
    },
    trafficDirection: pick([
      TrafficDirection.EGRESS,
      TrafficDirection.INGRESS,
      TrafficDirection.TRAFFIC_DIRECTION_UNKNOWN,
    ]),
    policyMatchType: i % 6,
    debugCapturePoint: i % 5,
    sockXlatePoint: i % 4,
    ...(r() < 0.8 ? { isReply: r() < 0.5 } : {}),
    ...(r() < 0.2 ? { ipTraceId: { traceId: BigInt(i) * 12345678901n, ipOptionType: 136 } } : {}),
    Summary: pick(["TCP Flags: SYN", "ICMPv4 EchoRequest", "DNS Answer \r\x1b[2J", "UDP"]),
    egressAllowedBy: r() < 0.5 ? [policy] : [],
    ingressAllowedBy: r() < 0.5 ? [policy, { ...policy, name: "other" }] : [],
    egressDeniedBy: r() < 0.5 ? [policy] : [],
    ingressDeniedBy: r() < 0.5 ? [policy] : [],
    policyLog: ["log"],
    traceContext: { parent: { traceId: "abc" } },
    interface: { index: 3, name: "eth0" },
    socketCookie: 123n,
    cgroupId: 456n,
  });
  return create(GetFlowsResponseSchema, {
    time,
    nodeName: flow.nodeName,
    responseTypes: { case: "flow", value: flow },
  });
}
