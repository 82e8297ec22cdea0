/**
 * Numbers from bpf/include/periscope.h beyond the trace record's own: record
 * types and versions, flags, trace reasons, drop sources, aggregation levels
 * and policy verdict fields. layout.test.ts checks every one against the header.
 */
import { MESSAGE_TYPE } from "@periscope/model";
import { CAPTURE_CONSTANTS } from "./capture.ts";
import { POLICY_RULE_CONSTANTS } from "./policy-rules.ts";
import { PROC_CONSTANTS } from "./proc.ts";

/** Record type of a drop record (`PSCOPE_REC_DROP`). */
export const RECORD_TYPE_DROP = MESSAGE_TYPE.DROP;
/** Record type of a debug record (`PSCOPE_REC_DEBUG`). */
export const RECORD_TYPE_DEBUG = MESSAGE_TYPE.DEBUG;
/** Record type of a policy verdict record (`PSCOPE_REC_POLICY_VERDICT`). */
export const RECORD_TYPE_POLICY_VERDICT = MESSAGE_TYPE.POLICY_VERDICT;

/** Format version of drop records (`PSCOPE_DROP_VERSION`). */
export const DROP_VERSION = 1;
/** Format version of policy verdict records (`PSCOPE_POLICY_VERDICT_VERSION`). */
export const POLICY_VERDICT_VERSION = 1;
/** Format version of debug records (`PSCOPE_DEBUG_VERSION`). */
export const DEBUG_VERSION = 1;

/** Header flag: data starts at the network header (`PSCOPE_F_L3`). */
export const FLAG_L3 = 0x02;
/** Header flag: periodic report of an active connection (`PSCOPE_F_CT_REPORT`). */
export const FLAG_CT_REPORT = 0x04;

/** Trace reasons (`PSCOPE_TRACE_REASON_*`), Cilium's datapath numbering; flow.TraceReason is value + 1. */
export const TRACE_REASON = {
  NEW: 0,
  ESTABLISHED: 1,
  REPLY: 2,
  RELATED: 3,
  REOPENED: 4,
  UNKNOWN: 5,
} as const;

/** Drop sources (`PSCOPE_DROP_SRC_*`, the drop record's subtype). */
export const DROP_SOURCE = { KERNEL: 1, POLICY: 2 } as const;
/** Cilium's drop reason for a policy denial (`PSCOPE_DROP_POLICY_DENIED`). */
export const DROP_POLICY_DENIED = 133;

/** Monitor aggregation levels (`PSCOPE_AGG_*`). */
export const AGGREGATION = { NONE: 0, LOW: 1, MEDIUM: 2, MAXIMUM: 3 } as const;

/** Policy verdict actions (`PSCOPE_POLICY_ACTION_*`). */
export const POLICY_ACTION = { ALLOW: 0, DENY: 1, AUDIT: 2 } as const;
/** Policy match types (`PSCOPE_POLICY_MATCH_*`), Cilium's numbering. */
export const POLICY_MATCH = { NONE: 0, L3_ONLY: 1, L3_L4: 2, L4_ONLY: 3, ALL: 4 } as const;
/** Traffic direction relative to a policy's subject (`PSCOPE_DIR_*`). */
export const POLICY_DIRECTION = { INGRESS: 1, EGRESS: 2 } as const;

/** Most capture-length overrides in the settings map (`PSCOPE_MAX_CAPTURE_RULES`). */
export const MAX_CAPTURE_RULES = 8;

/** The constants above by their C names, merged into HEADER_CONSTANTS. */
export const RECORD_CONSTANTS: Readonly<Record<string, number>> = {
  PSCOPE_REC_DROP: RECORD_TYPE_DROP,
  PSCOPE_REC_DEBUG: RECORD_TYPE_DEBUG,
  PSCOPE_REC_POLICY_VERDICT: RECORD_TYPE_POLICY_VERDICT,
  PSCOPE_DROP_VERSION: DROP_VERSION,
  PSCOPE_POLICY_VERDICT_VERSION: POLICY_VERDICT_VERSION,
  PSCOPE_DEBUG_VERSION: DEBUG_VERSION,
  PSCOPE_F_L3: FLAG_L3,
  PSCOPE_F_CT_REPORT: FLAG_CT_REPORT,
  ...Object.fromEntries(
    Object.entries(TRACE_REASON).map(([k, v]) => [`PSCOPE_TRACE_REASON_${k}`, v]),
  ),
  PSCOPE_DROP_SRC_KERNEL: DROP_SOURCE.KERNEL,
  PSCOPE_DROP_SRC_POLICY: DROP_SOURCE.POLICY,
  PSCOPE_DROP_POLICY_DENIED: DROP_POLICY_DENIED,
  ...Object.fromEntries(Object.entries(AGGREGATION).map(([k, v]) => [`PSCOPE_AGG_${k}`, v])),
  ...Object.fromEntries(
    Object.entries(POLICY_ACTION).map(([k, v]) => [`PSCOPE_POLICY_ACTION_${k}`, v]),
  ),
  ...Object.fromEntries(
    Object.entries(POLICY_MATCH).map(([k, v]) => [`PSCOPE_POLICY_MATCH_${k}`, v]),
  ),
  PSCOPE_DIR_INGRESS: POLICY_DIRECTION.INGRESS,
  PSCOPE_DIR_EGRESS: POLICY_DIRECTION.EGRESS,
  PSCOPE_MAX_CAPTURE_RULES: MAX_CAPTURE_RULES,
  ...POLICY_RULE_CONSTANTS,
  ...CAPTURE_CONSTANTS,
  ...PROC_CONSTANTS,
};
