import { expect, test } from "bun:test";
import { DropReason, FlowType, TrafficDirection, Verdict } from "@periscope/proto";
import { ethernet, ipv4, tcp } from "@periscope/testing";
import {
  decodePolicyVerdictRecord,
  encodePolicyVerdictRecord,
  FLAG_L3,
  POLICY_ACTION,
  POLICY_DIRECTION,
  POLICY_MATCH,
} from "@periscope/wire";
import { decodePolicyVerdictFlow } from "./policy-verdict.ts";

const ip = ipv4({ src: "10.6.0.1", dst: "10.7.0.2", protocol: 6 }, tcp(40000, 80, ["SYN"]));
const ctx = {
  nodeName: "n1",
  bootToRealtimeNs: 1_000_000_000n,
  endpoint: (a: string) =>
    a === "10.7.0.2" ? { namespace: "demo", podName: "web", labels: ["app=web"] } : undefined,
  ifName: () => "veth1",
  uuid: () => "u1",
};

function flowOf(action: number, direction: number, data: Uint8Array, flags = 0) {
  return decodePolicyVerdictFlow(
    decodePolicyVerdictRecord(
      encodePolicyVerdictRecord({
        flags,
        cpu: 0,
        origLen: data.length,
        tsBootNs: 5n,
        ifindex: 3,
        ruleId: 42,
        flowHash: 1,
        l3Proto: 0x0800,
        matchType: POLICY_MATCH.L3_L4,
        action,
        netnsCookie: 1n,
        direction,
        obsPoint: 10,
        data,
      }),
    ),
    ctx,
  );
}

test.each([
  [POLICY_ACTION.ALLOW, Verdict.FORWARDED],
  [POLICY_ACTION.DENY, Verdict.DROPPED],
  [POLICY_ACTION.AUDIT, Verdict.AUDIT],
])("flow policy verdict - action %d is verdict %d", (action, verdict) => {
  const f = flowOf(action, POLICY_DIRECTION.INGRESS, ethernet({ etherType: 0x0800 }, ip));
  expect(f.verdict).toBe(verdict);
  expect(f.dropReasonDesc).toBe(
    verdict === Verdict.DROPPED ? DropReason.POLICY_DENIED : DropReason.DROP_REASON_UNKNOWN,
  );
});

test("flow policy verdict - event type, match type, direction, layers and endpoints", () => {
  const f = flowOf(POLICY_ACTION.DENY, POLICY_DIRECTION.EGRESS, ip, FLAG_L3);
  expect(f.eventType?.type).toBe(5);
  expect(f.eventType?.subType).toBe(0);
  expect(f.Type).toBe(FlowType.L3_L4);
  expect(f.policyMatchType).toBe(POLICY_MATCH.L3_L4);
  expect(f.trafficDirection).toBe(TrafficDirection.EGRESS);
  expect(f.IP?.source).toBe("10.6.0.1");
  expect(f.IP?.destination).toBe("10.7.0.2");
  expect(f.l4?.protocol.case).toBe("TCP");
  expect(f.destination?.podName).toBe("web");
  expect(f.interface?.name).toBe("veth1");
  expect(f.Summary).toContain("SYN");
  expect(f.time?.seconds).toBe(1n);
  expect(f.egressDeniedBy.map((p) => [p.name, p.kind, p.labels])).toEqual([
    ["", "PeriscopePolicy", ["rule-id=42"]],
  ]);
});

test("flow policy verdict - the deciding rule is named when known", () => {
  const f = decodePolicyVerdictFlow(
    decodePolicyVerdictRecord(
      encodePolicyVerdictRecord({
        flags: FLAG_L3,
        cpu: 0,
        origLen: ip.length,
        tsBootNs: 5n,
        ifindex: 0,
        ruleId: 42,
        flowHash: 1,
        l3Proto: 0x0800,
        matchType: POLICY_MATCH.L4_ONLY,
        action: POLICY_ACTION.ALLOW,
        netnsCookie: 1n,
        direction: POLICY_DIRECTION.INGRESS,
        obsPoint: 10,
        data: ip,
      }),
    ),
    { ...ctx, policyRule: (id) => (id === 42 ? { policy: "web", rule: "http" } : undefined) },
  );
  expect(f.ingressAllowedBy.map((p) => [p.name, p.labels])).toEqual([
    ["web", ["rule=http", "rule-id=42"]],
  ]);
  expect(f.ingressDeniedBy).toEqual([]);
});
