import { MESSAGE_TYPE, traceSubtypeName } from "@periscope/model";
import {
  DebugCapturePoint,
  type Flow,
  L7FlowType,
  SocketTranslationPoint,
  TrafficDirection,
  Verdict,
} from "@periscope/proto";
import { hubbleReasonText, humanizeKernelReason } from "../drop-reasons.ts";

const POLICY_MATCH_TYPES: Readonly<Record<number, string>> = {
  0: "none",
  1: "L3-Only",
  2: "L3-L4",
  3: "L4-Only",
  4: "all",
  5: "L3-Proto",
  6: "Proto-Only",
};

const SOCK_XLATE: Readonly<Partial<Record<SocketTranslationPoint, string>>> = {
  [SocketTranslationPoint.SOCK_XLATE_POINT_POST_DIRECTION_FWD]: "post-xlate-fwd",
  [SocketTranslationPoint.SOCK_XLATE_POINT_POST_DIRECTION_REV]: "post-xlate-rev",
  [SocketTranslationPoint.SOCK_XLATE_POINT_PRE_DIRECTION_FWD]: "pre-xlate-fwd",
  [SocketTranslationPoint.SOCK_XLATE_POINT_PRE_DIRECTION_REV]: "pre-xlate-rev",
};

/**
 * hubble's TYPE column: "http-request", "dns-response proxy", "to-network",
 * "policy-verdict:L3-L4 INGRESS", the drop reason for drops, ... and
 * "UNKNOWN" for anything else.
 */
export function flowTypeText(flow: Flow): string {
  const l7 = flow.l7;
  if (l7) {
    let proto = "l7";
    let type = (L7FlowType[l7.type] ?? String(l7.type)).toLowerCase();
    if (l7.record.case === "http") proto = "http";
    else if (l7.record.case === "kafka") proto = "kafka";
    else if (l7.record.case === "dns") {
      proto = "dns";
      type += ` ${l7.record.value.observationSource}`;
    }
    return `${proto}-${type}`;
  }
  const et = flow.eventType;
  switch (et?.type ?? 0) {
    case MESSAGE_TYPE.TRACE:
      return traceSubtypeName(et?.subType ?? 0);
    case MESSAGE_TYPE.DROP:
      // hubble prints Cilium's drop-reason text; kernel drops print the kernel's reason.
      return flow.extDropReasonDesc !== ""
        ? humanizeKernelReason(flow.extDropReasonDesc)
        : hubbleReasonText(flow.dropReasonDesc);
    case MESSAGE_TYPE.POLICY_VERDICT:
      return `policy-verdict:${POLICY_MATCH_TYPES[flow.policyMatchType] ?? "unknown"} ${
        TrafficDirection[flow.trafficDirection] ?? String(flow.trafficDirection)
      }`;
    case MESSAGE_TYPE.CAPTURE:
      return DebugCapturePoint[flow.debugCapturePoint] ?? String(flow.debugCapturePoint);
    case MESSAGE_TYPE.TRACE_SOCK:
      return (
        SOCK_XLATE[flow.sockXlatePoint] ??
        SocketTranslationPoint[flow.sockXlatePoint] ??
        String(flow.sockXlatePoint)
      );
    default:
      return "UNKNOWN";
  }
}

/** hubble's VERDICT column: the verdict name, ALLOWED/DENIED/AUDITED for policy verdicts. */
export function verdictText(flow: Flow): string {
  const name = Verdict[flow.verdict] ?? String(flow.verdict);
  const policy = flow.eventType?.type === MESSAGE_TYPE.POLICY_VERDICT;
  if (!policy) return name;
  switch (flow.verdict) {
    case Verdict.FORWARDED:
    case Verdict.REDIRECTED:
      return "ALLOWED";
    case Verdict.DROPPED:
    case Verdict.ERROR:
      return "DENIED";
    case Verdict.AUDIT:
      return "AUDITED";
    default:
      return name;
  }
}
