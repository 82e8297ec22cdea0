/**
 * `struct pscope_policy_verdict` (record type 5): the policy decision for a new
 * connection, emitted by the tc programs (bpf/include/policy.h) when a policy selects
 * the packet's subject. Offsets are checked against the BTF by policy.test.ts.
 */
import { MAX_CAPTURE } from "@periscope/model";
import { POLICY_VERDICT_VERSION, RECORD_TYPE_POLICY_VERDICT } from "./constants.ts";
import { HDR_LAYOUT, HDR_SIZE, type StructLayout } from "./layout.ts";
import { checkRecord, newRecord, type RecordSpec } from "./record.ts";

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

/** A decoded `struct pscope_policy_verdict`. */
export interface PolicyVerdictRecord {
  /** Record type, always `RECORD_TYPE_POLICY_VERDICT`. */
  type: number;
  version: number;
  /** `FLAG_*` bits; `FLAG_L3` when `data` starts at the network header. */
  flags: number;
  /** CPU that produced the record. */
  cpu: number;
  /** Packet length at the hook, bytes. */
  origLen: number;
  capLen: number;
  /** CLOCK_BOOTTIME at the decision, nanoseconds. */
  tsBootNs: bigint;
  ifindex: number;
  /** Id of the deciding rule; 0 for the default decision. */
  ruleId: number;
  flowHash: number;
  /** EtherType (skb->protocol), host value. */
  l3Proto: number;
  /** `POLICY_MATCH.*` */
  matchType: number;
  /** `POLICY_ACTION.*` */
  action: number;
  netnsCookie: bigint;
  /** `POLICY_DIRECTION.*`, relative to the policy's subject. */
  direction: number;
  /** Observation point of the packet (`OBS_FROM_NETWORK` / `OBS_TO_NETWORK`). */
  obsPoint: number;
  /** First `capLen` bytes of the packet; a view into the record. */
  data: Uint8Array;
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
  const { view: v, type, version, capLen } = checkRecord(bytes, POLICY_VERDICT_SPEC);
  const h = HDR_LAYOUT.fields;
  const f = POLICY_VERDICT_LAYOUT.fields;
  return {
    type,
    version,
    flags: bytes[h.flags.offset] ?? 0,
    cpu: v.getUint32(h.source.offset, true),
    origLen: v.getUint32(h.orig_len.offset, true),
    capLen,
    tsBootNs: v.getBigUint64(f.ts_boot_ns.offset, true),
    ifindex: v.getUint32(f.ifindex.offset, true),
    ruleId: v.getUint32(f.rule_id.offset, true),
    flowHash: v.getUint32(f.flow_hash.offset, true),
    l3Proto: v.getUint16(f.l3_proto.offset, false),
    matchType: bytes[f.match_type.offset] ?? 0,
    action: bytes[f.action.offset] ?? 0,
    netnsCookie: v.getBigUint64(f.netns_cookie.offset, true),
    direction: bytes[f.direction.offset] ?? 0,
    obsPoint: bytes[f.obs_point.offset] ?? 0,
    data: bytes.subarray(POLICY_VERDICT_FIXED_SIZE, POLICY_VERDICT_FIXED_SIZE + capLen),
  };
}

/** A policy verdict record to encode; `capLen` is taken from `data.length`. */
export type PolicyVerdictRecordInit = Omit<PolicyVerdictRecord, "capLen" | "type" | "version">;

/**
 * Encodes a policy verdict record exactly as the kernel emits it, for tests.
 * @throws EncodeRangeError when `data` is longer than `MAX_CAPTURE`.
 */
export function encodePolicyVerdictRecord(rec: PolicyVerdictRecordInit): Uint8Array {
  const { bytes, view: v } = newRecord(
    POLICY_VERDICT_FIXED_SIZE,
    { ...rec, type: RECORD_TYPE_POLICY_VERDICT, subtype: 0, version: POLICY_VERDICT_VERSION },
    rec.data,
  );
  const f = POLICY_VERDICT_LAYOUT.fields;
  v.setBigUint64(f.ts_boot_ns.offset, rec.tsBootNs, true);
  v.setUint32(f.ifindex.offset, rec.ifindex, true);
  v.setUint32(f.rule_id.offset, rec.ruleId, true);
  v.setUint32(f.flow_hash.offset, rec.flowHash, true);
  v.setUint16(f.l3_proto.offset, rec.l3Proto, false);
  v.setUint8(f.match_type.offset, rec.matchType);
  v.setUint8(f.action.offset, rec.action);
  v.setBigUint64(f.netns_cookie.offset, rec.netnsCookie, true);
  v.setUint8(f.direction.offset, rec.direction);
  v.setUint8(f.obs_point.offset, rec.obsPoint);
  return bytes;
}
