import { MESSAGE_TYPE } from "@periscope/model";
import { DropReason, type Flow, PolicySchema, TrafficDirection, Verdict } from "@periscope/proto";
import {
  FLAG_L3,
  POLICY_ACTION,
  POLICY_DIRECTION,
  type PolicyVerdictRecord,
} from "@periscope/wire";
import { messageFactory } from "./message.ts";
import { decodePacket } from "./packet/decode.ts";
import type { DecodedPacket } from "./packet/types.ts";
import { type DecodeContext, eventType, fillPacket, recordFlow } from "./trace.ts";

const newPolicy = messageFactory(PolicySchema);

/** flow.Policy.kind of Periscope's policies. */
export const POLICY_KIND = "PeriscopePolicy";

/** What decodePolicyVerdictFlow needs besides {@link DecodeContext}. */
export interface PolicyVerdictContext extends DecodeContext {
  /** Policy and rule name of a rule id, if known. */
  policyRule?(id: number): { readonly policy: string; readonly rule: string } | undefined;
}

/** flow.Verdict for a policy action: FORWARDED, DROPPED or AUDIT. */
export function policyVerdict(action: number): Verdict {
  switch (action) {
    case POLICY_ACTION.ALLOW:
      return Verdict.FORWARDED;
    case POLICY_ACTION.DENY:
      return Verdict.DROPPED;
    case POLICY_ACTION.AUDIT:
      return Verdict.AUDIT;
    default:
      return Verdict.VERDICT_UNKNOWN;
  }
}

function policyDirection(direction: number): TrafficDirection {
  if (direction === POLICY_DIRECTION.INGRESS) return TrafficDirection.INGRESS;
  if (direction === POLICY_DIRECTION.EGRESS) return TrafficDirection.EGRESS;
  return TrafficDirection.TRAFFIC_DIRECTION_UNKNOWN;
}

function decodeVerdictPacket(rec: PolicyVerdictRecord): DecodedPacket {
  if (rec.data.length === 0) return { truncated: rec.origLen > 0 };
  return decodePacket(rec.data, (rec.flags & FLAG_L3) !== 0 ? "ip" : "ethernet");
}

/**
 * Turn a policy verdict record into the flow.Flow Hubble produces for a policy-verdict
 * event: event_type {5, 0}, verdict FORWARDED / DROPPED (drop reason POLICY_DENIED) /
 * AUDIT, policy_match_type, traffic_direction relative to the policy's subject,
 * addresses, ports, endpoints, interface and the packet summary.
 * @throws PacketDecodeError when the captured packet is malformed.
 */
export function decodePolicyVerdictFlow(rec: PolicyVerdictRecord, ctx: PolicyVerdictContext): Flow {
  const packet = decodeVerdictPacket(rec);
  const flow = recordFlow(rec, ctx, policyVerdict(rec.action));
  if (flow.verdict === Verdict.DROPPED) {
    flow.dropReason = DropReason.POLICY_DENIED;
    flow.dropReasonDesc = DropReason.POLICY_DENIED;
  }
  flow.eventType = eventType(MESSAGE_TYPE.POLICY_VERDICT, 0);
  flow.policyMatchType = rec.matchType;
  flow.trafficDirection = policyDirection(rec.direction);
  fillPacket(flow, packet, rec, ctx);
  fillDecidedBy(flow, rec, ctx);
  return flow;
}

/**
 * The deciding rule as flow.Policy in {ingress,egress}_{allowed,denied}_by (audited
 * flows count as denied): name = policy name, labels `rule=<name>` and `rule-id=<id>`.
 */
function fillDecidedBy(flow: Flow, rec: PolicyVerdictRecord, ctx: PolicyVerdictContext): void {
  if (rec.ruleId === 0) return;
  const named = ctx.policyRule?.(rec.ruleId);
  const p = newPolicy();
  p.name = named?.policy ?? "";
  p.kind = POLICY_KIND;
  p.labels = [...(named ? [`rule=${named.rule}`] : []), `rule-id=${rec.ruleId}`];
  const allowed = rec.action === POLICY_ACTION.ALLOW;
  if (rec.direction === POLICY_DIRECTION.INGRESS) {
    (allowed ? flow.ingressAllowedBy : flow.ingressDeniedBy).push(p);
  } else if (rec.direction === POLICY_DIRECTION.EGRESS) {
    (allowed ? flow.egressAllowedBy : flow.egressDeniedBy).push(p);
  }
}
