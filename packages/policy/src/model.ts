/**
 * The L3/L4 policy model: a named policy (mode enforce or audit) holds rules that
 * allow or deny traffic of a subject (an interface glob or an endpoint label
 * selector) in one direction, by peer CIDR, protocol and destination port range.
 */

/** enforce: denied traffic is dropped; audit: it passes and is reported as AUDIT. */
export type PolicyMode = "enforce" | "audit";
/** What a matching rule does. */
export type RuleAction = "allow" | "deny";
/** Relative to the subject: ingress = traffic to it, egress = traffic from it. */
export type RuleDirection = "ingress" | "egress";
/** Protocols a rule can name; "icmp" means ICMP for IPv4 peers and ICMPv6 for IPv6 peers. */
export type RuleProtocol = "tcp" | "udp" | "sctp" | "icmp" | "any";

/**
 * Who a rule applies to: the devices matching an interface pattern as the collector's
 * `--interfaces` (`[<netns>/]<ifname>`, globs allowed), or the endpoints whose labels
 * match a selector (`app=web,tier!=db`).
 */
export type RuleSubject =
  | { readonly kind: "interface"; readonly pattern: string }
  | { readonly kind: "endpoint"; readonly selector: string };

/** A peer prefix: canonical text plus the parsed address. */
export interface Cidr {
  /** Canonical `address/len` with host bits cleared. */
  readonly text: string;
  readonly family: 4 | 6;
  /** Network address bytes (4 or 16), host bits zero. */
  readonly addr: Uint8Array;
  readonly prefixLen: number;
}

/** An inclusive destination port range. */
export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/** One rule of a policy. */
export interface PolicyRule {
  /** Stable number reported in verdicts, unique over all policies, 1..2^32-1. */
  readonly id: number;
  readonly name: string;
  readonly action: RuleAction;
  readonly direction: RuleDirection;
  readonly subject: RuleSubject;
  /** Peer prefixes; empty = any peer. */
  readonly peers: readonly Cidr[];
  readonly protocol: RuleProtocol;
  /** Destination ports; absent = any port. Only with tcp, udp, sctp or any. */
  readonly ports?: PortRange;
}

/** A named policy. */
export interface Policy {
  readonly name: string;
  readonly mode: PolicyMode;
  readonly rules: readonly PolicyRule[];
}

/** Most rules one policy may hold (the kernel holds at most 256 compiled rules in all). */
export const MAX_POLICY_RULES = 256;
