/**
 * `struct pscope_policy_verdict` (record type 5): the policy decision for a new
 * connection, emitted by the tc programs (bpf/include/policy.h) when a policy selects
 * the packet's subject. Offsets are checked against the BTF by policy.test.ts.
 */
import { MAX_CAPTURE } from "@periscope/model";
import { POLICY_VERDICT_VERSION, RECORD_TYPE_POLICY_VERDICT } from "./constants.ts";
import { MalformedRecordError } from "./decode.ts";
import { EncodeRangeError } from "./encode.ts";
import { HDR_LAYOUT, HDR_SIZE, type StructLayout } from "./layout.ts";

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

/**
 * Decodes one policy verdict record (a sample of exactly `56 + cap_len` bytes).
 * @throws MalformedRecordError naming the failed check: length, type, version, cap_len.
 */
export function decodePolicyVerdictRecord(bytes: Uint8Array): PolicyVerdictRecord {
  if (bytes.byteLength < HDR_SIZE) {
    throw new MalformedRecordError(
      "too_short",
      `record too short: ${bytes.byteLength} bytes, header needs ${HDR_SIZE}`,
    );
  }
  const h = HDR_LAYOUT.fields;
  const type = bytes[h.type.offset] ?? 0;
  if (type !== RECORD_TYPE_POLICY_VERDICT) {
    throw new MalformedRecordError(
      "wrong_type",
      `not a policy verdict record: type ${type}, expected ${RECORD_TYPE_POLICY_VERDICT}`,
    );
  }
  const version = bytes[h.version.offset] ?? 0;
  if (version !== POLICY_VERDICT_VERSION) {
    throw new MalformedRecordError(
      "bad_version",
      `policy verdict record version ${version} unsupported, expected ${POLICY_VERDICT_VERSION}`,
    );
  }
  if (bytes.byteLength < POLICY_VERDICT_FIXED_SIZE) {
    throw new MalformedRecordError(
      "too_short",
      `policy verdict record too short: ${bytes.byteLength} bytes, fixed part needs ${POLICY_VERDICT_FIXED_SIZE}`,
    );
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const capLen = v.getUint32(h.cap_len.offset, true);
  if (capLen > MAX_CAPTURE) {
    throw new MalformedRecordError(
      "cap_len_too_large",
      `policy verdict record cap_len ${capLen} exceeds maximum capture ${MAX_CAPTURE}`,
    );
  }
  const available = bytes.byteLength - POLICY_VERDICT_FIXED_SIZE;
  if (capLen !== available) {
    throw new MalformedRecordError(
      capLen > available ? "cap_len_beyond_sample" : "trailing_bytes",
      `policy verdict record cap_len ${capLen} but ${available} bytes follow the fixed part`,
    );
  }
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
  if (rec.data.length > MAX_CAPTURE) {
    throw new EncodeRangeError(`data is ${rec.data.length} bytes, maximum capture ${MAX_CAPTURE}`);
  }
  const out = new Uint8Array(POLICY_VERDICT_FIXED_SIZE + rec.data.length);
  const v = new DataView(out.buffer);
  const h = HDR_LAYOUT.fields;
  const f = POLICY_VERDICT_LAYOUT.fields;
  v.setUint8(h.type.offset, RECORD_TYPE_POLICY_VERDICT);
  v.setUint8(h.version.offset, POLICY_VERDICT_VERSION);
  v.setUint8(h.flags.offset, rec.flags);
  v.setUint32(h.source.offset, rec.cpu, true);
  v.setUint32(h.orig_len.offset, rec.origLen, true);
  v.setUint32(h.cap_len.offset, rec.data.length, true);
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
  out.set(rec.data, POLICY_VERDICT_FIXED_SIZE);
  return out;
}
