/**
 * `struct pscope_policy_verdict` (record type 5): the policy decision for a new
 * connection, emitted by the tc programs (bpf/include/policy.h) when a policy selects
 * the packet's subject. Offsets are checked against the BTF by policy.test.ts.
 */
import { MAX_CAPTURE } from "@periscope/model";
import { POLICY_VERDICT_VERSION, RECORD_TYPE_POLICY_VERDICT } from "./constants.ts";
import { HDR_SIZE, type StructLayout } from "./layout.ts";
import { newPacketRecord, type PacketRecordBase, readPacketFields } from "./packet-record.ts";
import { checkRecord, type RecordSpec } from "./record.ts";

/** Size of the fixed part of a policy verdict record; `cap_len` packet bytes follow. */
export const POLICY_VERDICT_FIXED_SIZE = 56;

/**
 * `struct pscope_policy_verdict`. `flow_hash` sits at 32 like the trace record's,
 * `l3_proto` is network byte order, the rest host order.
 */
export const POLICY_VERDICT_LAYOUT = {
  size: POLICY_VERDICT_FIXED_SIZE + MAX_CAPTURE,
  fixedSize: POLICY_VERDICT_FIXED_SIZE,
  fields: {
    hdr: { offset: 0, size: HDR_SIZE },
    ts_boot_ns: { offset: 16, size: 8 },
    ifindex: { offset: 24, size: 4 },
    rule_id: { offset: 28, size: 4 },
    flow_hash: { offset: 32, size: 4 },
    l3_proto: { offset: 36, size: 2 },
    match_type: { offset: 38, size: 1 },
    action: { offset: 39, size: 1 },
    netns_cookie: { offset: 40, size: 8 },
    direction: { offset: 48, size: 1 },
    obs_point: { offset: 49, size: 1 },
    _pad0: { offset: 50, size: 6 },
    data: { offset: POLICY_VERDICT_FIXED_SIZE, size: MAX_CAPTURE },
  },
} as const satisfies StructLayout;

/** A decoded `struct pscope_policy_verdict` (type `RECORD_TYPE_POLICY_VERDICT`). */
export interface PolicyVerdictRecord extends PacketRecordBase {
  /** Id of the deciding rule; 0 for the default decision. */
  ruleId: number;
  /** `POLICY_MATCH.*` */
  matchType: number;
  /** `POLICY_ACTION.*` */
  action: number;
  /** `POLICY_DIRECTION.*`, relative to the policy's subject. */
  direction: number;
  /** Observation point of the packet (`OBS_FROM_NETWORK` / `OBS_TO_NETWORK`). */
  obsPoint: number;
}

/** What a policy verdict record must look like; a wrong cap_len has one message either way. */
const POLICY_VERDICT_SPEC: RecordSpec = {
  name: "policy verdict",
  type: RECORD_TYPE_POLICY_VERDICT,
  version: POLICY_VERDICT_VERSION,
  fixedSize: POLICY_VERDICT_FIXED_SIZE,
  wording: {
    capLenBeyond: (c, a) => capLenMismatch(c, a),
    trailing: (x, c) => capLenMismatch(c, c + x),
  },
};

function capLenMismatch(capLen: number, available: number): string {
  return `policy verdict record cap_len ${capLen} but ${available} bytes follow the fixed part`;
}

/**
 * Decodes one policy verdict record (a sample of exactly `56 + cap_len` bytes).
 * @throws MalformedRecordError naming the failed check: length, type, version, cap_len.
 */
export function decodePolicyVerdictRecord(bytes: Uint8Array): PolicyVerdictRecord {
  const rec = checkRecord(bytes, POLICY_VERDICT_SPEC);
  const f = POLICY_VERDICT_LAYOUT.fields;
  // Filled in place: spreading the shared fields into a new object halves the decode rate.
  const out = readPacketFields(bytes, rec, POLICY_VERDICT_LAYOUT) as PolicyVerdictRecord;
  out.ruleId = rec.view.getUint32(f.rule_id.offset, true);
  out.matchType = bytes[f.match_type.offset] ?? 0;
  out.action = bytes[f.action.offset] ?? 0;
  out.direction = bytes[f.direction.offset] ?? 0;
  out.obsPoint = bytes[f.obs_point.offset] ?? 0;
  return out;
}

/** A policy verdict record to encode; `capLen` is taken from `data.length`. */
export type PolicyVerdictRecordInit = Omit<PolicyVerdictRecord, "capLen" | "type" | "version">;

/**
 * Encodes a policy verdict record exactly as the kernel emits it, for tests.
 * @throws EncodeRangeError when `data` is longer than `MAX_CAPTURE`.
 */
export function encodePolicyVerdictRecord(rec: PolicyVerdictRecordInit): Uint8Array {
  const { bytes, view: v } = newPacketRecord(
    POLICY_VERDICT_LAYOUT,
    { ...rec, type: RECORD_TYPE_POLICY_VERDICT, version: POLICY_VERDICT_VERSION },
    0,
  );
  const f = POLICY_VERDICT_LAYOUT.fields;
  v.setUint32(f.rule_id.offset, rec.ruleId, true);
  v.setUint8(f.match_type.offset, rec.matchType);
  v.setUint8(f.action.offset, rec.action);
  v.setUint8(f.direction.offset, rec.direction);
  v.setUint8(f.obs_point.offset, rec.obsPoint);
  return bytes;
}
