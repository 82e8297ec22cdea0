import { compileLabelSelector, parseLabel } from "@periscope/flow";
import { parseIp } from "@periscope/model";
import {
  type KernelPolicyRule,
  type KernelPolicySet,
  POLICY_ACTION,
  POLICY_DIRECTION,
  POLICY_MATCH,
  POLICY_MAX_RULES,
  POLICY_MAX_SUBJECTS,
} from "@periscope/wire";
import { PolicyError } from "./errors.ts";
import type { Cidr, Policy, PolicyRule, RuleSubject } from "./model.ts";

/** A device as the kernel identifies it. */
export interface PolicyDevice {
  readonly netnsCookie: bigint;
  readonly ifindex: number;
}

/** An endpoint of the endpoints registry: address and labels. */
export interface PolicyEndpoint {
  readonly ip: string;
  readonly labels: readonly string[];
}

/** What subjects resolve to on this node. */
export interface SubjectResolver {
  /** Devices matching an interface pattern (`[<netns>/]<ifname>`, globs allowed). */
  devices(pattern: string): readonly PolicyDevice[];
  /** Every endpoint known; selectors are matched against their labels. */
  endpoints(): readonly PolicyEndpoint[];
}

/** One subject of a compiled rule set (a bit in the kernel's masks). */
export interface CompiledSubject {
  readonly bit: number;
  readonly policy: string;
  readonly subject: RuleSubject;
  readonly devices: number;
  readonly addresses: number;
}

/** Everything the kernel needs for one slot. */
export interface CompiledRuleSet {
  /** Ordered: deny, audit (deny in audit mode), allow. The first match decides. */
  readonly rules: readonly KernelPolicyRule[];
  readonly set: KernelPolicySet;
  readonly devices: readonly (PolicyDevice & { readonly bits: bigint })[];
  readonly endpoints: readonly { readonly addr: Uint8Array; readonly bits: bigint }[];
  readonly subjects: readonly CompiledSubject[];
  /** Equal for rule sets the kernel would hold identically. */
  readonly fingerprint: string;
}

const PROTO_NUMBERS = { tcp: [6], udp: [17], sctp: [132], any: [0] } as const;
const ICMP = { 4: 1, 6: 58 } as const;
const ACTION_ORDER = [POLICY_ACTION.DENY, POLICY_ACTION.AUDIT, POLICY_ACTION.ALLOW];

function matchType(rule: PolicyRule): number {
  const l3 = rule.peers.length > 0;
  const l4 = rule.protocol !== "any" || rule.ports !== undefined;
  if (l3 && l4) return POLICY_MATCH.L3_L4;
  if (l3) return POLICY_MATCH.L3_ONLY;
  if (l4) return POLICY_MATCH.L4_ONLY;
  return POLICY_MATCH.ALL;
}

/** (peer, proto) pairs a rule expands to: one kernel rule each. */
function expand(rule: PolicyRule): { peer: Cidr | undefined; proto: number }[] {
  const peers: (Cidr | undefined)[] = rule.peers.length > 0 ? [...rule.peers] : [undefined];
  const out: { peer: Cidr | undefined; proto: number }[] = [];
  for (const peer of peers) {
    if (rule.protocol === "icmp") {
      if (peer) out.push({ peer, proto: ICMP[peer.family] });
      else out.push({ peer, proto: ICMP[4] }, { peer, proto: ICMP[6] });
    } else {
      for (const proto of PROTO_NUMBERS[rule.protocol]) out.push({ peer, proto });
    }
  }
  return out;
}

function subjectKey(policy: string, s: RuleSubject): string {
  return `${policy}\u0000${s.kind}\u0000${s.kind === "interface" ? s.pattern : s.selector}`;
}

/**
 * Compiles policies into one kernel rule set for this node: subjects (one bit per
 * distinct subject of each policy) resolved to devices and endpoint addresses, rules
 * expanded per peer and protocol and ordered so the first match decides.
 * @throws PolicyError when the set needs more than the kernel holds (64 subjects,
 *   256 rules), naming the policy and rule where it overflowed.
 */
export function compilePolicies(
  policies: readonly Policy[],
  resolver: SubjectResolver,
): CompiledRuleSet {
  const bits = new Map<string, number>();
  const subjects: CompiledSubject[] = [];
  const devBits = new Map<string, PolicyDevice & { bits: bigint }>();
  const epBits = new Map<string, { addr: Uint8Array; bits: bigint }>();
  const selected: [bigint, bigint] = [0n, 0n];
  const allowSelected: [bigint, bigint] = [0n, 0n];
  let enforce = 0n;
  const rules: KernelPolicyRule[] = [];
  let endpointList: readonly PolicyEndpoint[] | undefined;

  const bitOf = (p: Policy, r: PolicyRule, index: number): number => {
    const key = subjectKey(p.name, r.subject);
    const known = bits.get(key);
    if (known !== undefined) return known;
    const bit = subjects.length;
    if (bit >= POLICY_MAX_SUBJECTS) {
      throw new PolicyError(
        { policy: p.name, ruleIndex: index, rule: r.name, field: r.subject.kind },
        `more than ${POLICY_MAX_SUBJECTS} distinct subjects in all policies`,
      );
    }
    bits.set(key, bit);
    const mask = 1n << BigInt(bit);
    let devices = 0;
    let addresses = 0;
    if (r.subject.kind === "interface") {
      for (const d of resolver.devices(r.subject.pattern)) {
        const k = `${d.netnsCookie}/${d.ifindex}`;
        const e = devBits.get(k) ?? { netnsCookie: d.netnsCookie, ifindex: d.ifindex, bits: 0n };
        e.bits |= mask;
        devBits.set(k, e);
        devices++;
      }
    } else {
      const match = compileLabelSelector(r.subject.selector);
      endpointList ??= resolver.endpoints();
      for (const ep of endpointList) {
        if (!match(ep.labels.map(parseLabel))) continue;
        const addr = parseIp(ep.ip);
        if (addr === undefined) continue;
        const k = Array.from(addr).join(".");
        const e = epBits.get(k) ?? { addr, bits: 0n };
        e.bits |= mask;
        epBits.set(k, e);
        addresses++;
      }
    }
    if (p.mode === "enforce") enforce |= mask;
    subjects.push({ bit, policy: p.name, subject: r.subject, devices, addresses });
    return bit;
  };

  for (const p of policies) {
    p.rules.forEach((r, index) => {
      const bit = bitOf(p, r, index);
      const d = r.direction === "ingress" ? 0 : 1;
      const mask = 1n << BigInt(bit);
      selected[d] |= mask;
      if (r.action === "allow") allowSelected[d] |= mask;
      const action =
        r.action === "allow"
          ? POLICY_ACTION.ALLOW
          : p.mode === "enforce"
            ? POLICY_ACTION.DENY
            : POLICY_ACTION.AUDIT;
      for (const { peer, proto } of expand(r)) {
        rules.push({
          id: r.id,
          action,
          direction: d === 0 ? POLICY_DIRECTION.INGRESS : POLICY_DIRECTION.EGRESS,
          subject: bit,
          matchType: matchType(r),
          proto,
          ...(peer
            ? { peer: { family: peer.family, addr: peer.addr, prefixLen: peer.prefixLen } }
            : {}),
          ...(r.ports ? { ports: r.ports } : {}),
        });
        if (rules.length > POLICY_MAX_RULES) {
          throw new PolicyError(
            { policy: p.name, ruleIndex: index, rule: r.name },
            `more than ${POLICY_MAX_RULES} kernel rules in all policies (one per peer and protocol)`,
          );
        }
      }
    });
  }
  const ordered = ACTION_ORDER.flatMap((a) => rules.filter((r) => r.action === a));
  const devices = [...devBits.values()];
  const endpoints = [...epBits.values()];
  const set: KernelPolicySet = { nRules: ordered.length, selected, allowSelected, enforce };
  const fingerprint = JSON.stringify({
    rules: ordered.map((r) => ({
      ...r,
      peer: r.peer && { ...r.peer, addr: Array.from(r.peer.addr) },
    })),
    set: {
      ...set,
      selected: set.selected.map(String),
      allowSelected: set.allowSelected.map(String),
      enforce: String(enforce),
    },
    devices: devices.map((d) => `${d.netnsCookie}/${d.ifindex}=${d.bits}`).sort(),
    endpoints: endpoints.map((e) => `${Array.from(e.addr).join(".")}=${e.bits}`).sort(),
  });
  return { rules: ordered, set, devices, endpoints, subjects, fingerprint };
}
