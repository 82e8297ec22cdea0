/**
 * Kernel layout of compiled policy rule sets (bpf/include/periscope.h: struct
 * pscope_policy_rule, pscope_policy_set, pscope_policy_dev_key, pscope_policy_ep_key)
 * and their encoders. policy.test.ts checks the layouts against the BTF.
 */
import type { StructLayout } from "./layout.ts";

/** Rule set slots (`PSCOPE_POLICY_SLOTS`): the active one is revision & 1. */
export const POLICY_SLOTS = 2;
/** Kernel rules per slot (`PSCOPE_POLICY_MAX_RULES`). */
export const POLICY_MAX_RULES = 256;
/** Subjects per slot (`PSCOPE_POLICY_MAX_SUBJECTS`), one bit each. */
export const POLICY_MAX_SUBJECTS = 64;

/** The policy constants by their C names, merged into HEADER_CONSTANTS. */
export const POLICY_RULE_CONSTANTS: Readonly<Record<string, number>> = {
  PSCOPE_POLICY_SLOTS: POLICY_SLOTS,
  PSCOPE_POLICY_MAX_RULES: POLICY_MAX_RULES,
  PSCOPE_POLICY_MAX_SUBJECTS: POLICY_MAX_SUBJECTS,
};

/** `struct pscope_policy_rule` (32 bytes). */
export const POLICY_RULE_LAYOUT = {
  size: 32,
  fields: {
    id: { offset: 0, size: 4 },
    action: { offset: 4, size: 1 },
    direction: { offset: 5, size: 1 },
    subject: { offset: 6, size: 1 },
    match_type: { offset: 7, size: 1 },
    proto: { offset: 8, size: 1 },
    family: { offset: 9, size: 1 },
    prefix_len: { offset: 10, size: 1 },
    ports: { offset: 11, size: 1 },
    port_lo: { offset: 12, size: 2 },
    port_hi: { offset: 14, size: 2 },
    peer: { offset: 16, size: 16 },
  },
} as const satisfies StructLayout;

/** `struct pscope_policy_set` (48 bytes). */
export const POLICY_SET_LAYOUT = {
  size: 48,
  fields: {
    n_rules: { offset: 0, size: 4 },
    _pad0: { offset: 4, size: 4 },
    selected: { offset: 8, size: 16 },
    allow_selected: { offset: 24, size: 16 },
    enforce: { offset: 40, size: 8 },
  },
} as const satisfies StructLayout;

/** `struct pscope_policy_dev_key` (16 bytes). */
export const POLICY_DEV_KEY_LAYOUT = {
  size: 16,
  fields: {
    netns_cookie: { offset: 0, size: 8 },
    ifindex: { offset: 8, size: 4 },
    slot: { offset: 12, size: 4 },
  },
} as const satisfies StructLayout;

/** `struct pscope_policy_ep_key` (20 bytes). */
export const POLICY_EP_KEY_LAYOUT = {
  size: 20,
  fields: {
    slot: { offset: 0, size: 1 },
    family: { offset: 1, size: 1 },
    _pad0: { offset: 2, size: 2 },
    addr: { offset: 4, size: 16 },
  },
} as const satisfies StructLayout;

/** One kernel rule as user space builds it. */
export interface KernelPolicyRule {
  readonly id: number;
  /** `POLICY_ACTION.*`: ALLOW, DENY, or AUDIT for a deny rule of an audit-mode policy. */
  readonly action: number;
  /** `POLICY_DIRECTION.*` */
  readonly direction: number;
  /** Subject bit, 0..POLICY_MAX_SUBJECTS-1. */
  readonly subject: number;
  /** `POLICY_MATCH.*` reported when the rule decides. */
  readonly matchType: number;
  /** IP protocol number, 0 = any. */
  readonly proto: number;
  /** Peer prefix: 4 or 6 with its address bytes (network order, host bits zero); absent = any peer. */
  readonly peer?: { readonly family: 4 | 6; readonly addr: Uint8Array; readonly prefixLen: number };
  /** Destination port range (inclusive); absent = any port. */
  readonly ports?: { readonly from: number; readonly to: number };
}

/** Summary of a slot's rule set: subject bit masks, bit i = subject i. */
export interface KernelPolicySet {
  readonly nRules: number;
  /** Index 0 ingress, 1 egress. */
  readonly selected: readonly [bigint, bigint];
  readonly allowSelected: readonly [bigint, bigint];
  readonly enforce: bigint;
}

/** Bytes of `struct pscope_policy_rule`. */
export function encodePolicyRule(r: KernelPolicyRule): Uint8Array {
  const out = new Uint8Array(POLICY_RULE_LAYOUT.size);
  const v = new DataView(out.buffer);
  const f = POLICY_RULE_LAYOUT.fields;
  v.setUint32(f.id.offset, r.id, true);
  v.setUint8(f.action.offset, r.action);
  v.setUint8(f.direction.offset, r.direction);
  v.setUint8(f.subject.offset, r.subject);
  v.setUint8(f.match_type.offset, r.matchType);
  v.setUint8(f.proto.offset, r.proto);
  if (r.peer) {
    v.setUint8(f.family.offset, r.peer.family);
    v.setUint8(f.prefix_len.offset, r.peer.prefixLen);
    out.set(r.peer.addr, f.peer.offset);
  }
  if (r.ports) {
    v.setUint8(f.ports.offset, 1);
    v.setUint16(f.port_lo.offset, r.ports.from, true);
    v.setUint16(f.port_hi.offset, r.ports.to, true);
  }
  return out;
}

/** Bytes of `struct pscope_policy_set`. */
export function encodePolicySet(s: KernelPolicySet): Uint8Array {
  const out = new Uint8Array(POLICY_SET_LAYOUT.size);
  const v = new DataView(out.buffer);
  const f = POLICY_SET_LAYOUT.fields;
  v.setUint32(f.n_rules.offset, s.nRules, true);
  for (let d = 0; d < 2; d++) {
    v.setBigUint64(f.selected.offset + 8 * d, s.selected[d] ?? 0n, true);
    v.setBigUint64(f.allow_selected.offset + 8 * d, s.allowSelected[d] ?? 0n, true);
  }
  v.setBigUint64(f.enforce.offset, s.enforce, true);
  return out;
}

/** Bytes of `struct pscope_policy_dev_key`. */
export function encodePolicyDevKey(slot: number, netnsCookie: bigint, ifindex: number): Uint8Array {
  const out = new Uint8Array(POLICY_DEV_KEY_LAYOUT.size);
  const v = new DataView(out.buffer);
  const f = POLICY_DEV_KEY_LAYOUT.fields;
  v.setBigUint64(f.netns_cookie.offset, netnsCookie, true);
  v.setUint32(f.ifindex.offset, ifindex, true);
  v.setUint32(f.slot.offset, slot, true);
  return out;
}

/** Bytes of `struct pscope_policy_ep_key`; `addr` is 4 or 16 address bytes. */
export function encodePolicyEpKey(slot: number, addr: Uint8Array): Uint8Array {
  const out = new Uint8Array(POLICY_EP_KEY_LAYOUT.size);
  const f = POLICY_EP_KEY_LAYOUT.fields;
  out[f.slot.offset] = slot;
  out[f.family.offset] = addr.length === 16 ? 6 : 4;
  out.set(addr, f.addr.offset);
  return out;
}
