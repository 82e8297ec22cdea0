/**
 * The trace program's run-time settings (`struct pscope_settings` in the
 * `settings` map) and its connection table (`conntrack`) in TypeScript:
 * validation, encoding, capture-rule parsing, connection keys and entries.
 */
import { isIPv4, isIPv6 } from "node:net";
import { MAX_CAPTURE } from "@periscope/model";
import {
  AGGREGATION,
  CAPTURE_RULE_LAYOUT,
  CT_ENTRY_LAYOUT,
  CT_KEY_LAYOUT,
  MAX_CAPTURE_RULES,
  SETTINGS_LAYOUT,
} from "@periscope/wire";

/** Monitor aggregation level, like Cilium's monitor-aggregation. */
export type AggregationLevel = "none" | "low" | "medium" | "maximum";
/** Every aggregation level, least aggregation first. */
export const AGGREGATION_LEVELS: readonly AggregationLevel[] = ["none", "low", "medium", "maximum"];

/** A capture-length override: packets of `proto` (0 = any) with `port` as source or destination (0 = any) capture `len` bytes. */
export interface CaptureRule {
  proto: number;
  port: number;
  len: number;
}

/** What the trace program reads per packet. */
export interface TraceSettings {
  aggregation: AggregationLevel;
  /** medium/maximum: one report per active connection per interval; 0 = none. */
  reportIntervalMs: number;
  /** Emit debug records (connection created/matched, policy denials). */
  debug: boolean;
  /** First match wins; at most MAX_CAPTURE_RULES. */
  captureRules: CaptureRule[];
}

/** Settings of a freshly loaded program (the map starts zeroed: aggregation none). */
export const INITIAL_TRACE_SETTINGS: Readonly<TraceSettings> = Object.freeze({
  aggregation: "none",
  reportIntervalMs: 0,
  debug: false,
  captureRules: [],
});

/** A setting that cannot be applied; `field` names it. */
export class SettingsError extends RangeError {
  override readonly name = "SettingsError";
  constructor(
    readonly field: string,
    /** What is wrong, without the field name. */
    readonly detail: string,
  ) {
    super(`${field}: ${detail}`);
  }
}

const PROTO_NAMES: Readonly<Record<string, number>> = {
  any: 0,
  icmp: 1,
  tcp: 6,
  udp: 17,
  icmpv6: 58,
  sctp: 132,
};

/**
 * Parses `<proto>[/<port>]=<len>` (e.g. `udp/53=512`, `tcp=96`, `any/443=256`);
 * proto is a name (any, tcp, udp, sctp, icmp, icmpv6) or a number 0..255.
 * @throws SettingsError naming the rule and what is wrong with it.
 */
export function parseCaptureRule(text: string): CaptureRule {
  const m = /^\s*([a-z0-9]+)(?:\/(\d+))?\s*=\s*(\d+)\s*$/i.exec(text);
  if (!m) throw new SettingsError("captureRules", `"${text}" is not <proto>[/<port>]=<len>`);
  const [, protoText = "", portText, lenText = ""] = m;
  const proto = /^\d+$/.test(protoText) ? Number(protoText) : PROTO_NAMES[protoText.toLowerCase()];
  if (proto === undefined) {
    throw new SettingsError("captureRules", `"${text}": unknown protocol "${protoText}"`);
  }
  const rule = { proto, port: portText === undefined ? 0 : Number(portText), len: Number(lenText) };
  try {
    checkCaptureRule(rule, 0);
  } catch (err) {
    if (err instanceof SettingsError)
      throw new SettingsError("captureRules", `"${text}": ${err.detail}`);
    throw err;
  }
  return rule;
}

/** Formats a rule the way {@link parseCaptureRule} reads it. */
export function formatCaptureRule(r: CaptureRule): string {
  const name = Object.entries(PROTO_NAMES).find(([, v]) => v === r.proto)?.[0] ?? String(r.proto);
  return `${name}${r.port ? `/${r.port}` : ""}=${r.len}`;
}

function checkCaptureRule(r: CaptureRule, i: number): void {
  const field = `captureRules[${i}]`;
  if (!Number.isInteger(r.proto) || r.proto < 0 || r.proto > 255) {
    throw new SettingsError(field, `proto must be 0..255, got ${r.proto}`);
  }
  if (!Number.isInteger(r.port) || r.port < 0 || r.port > 65535) {
    throw new SettingsError(field, `port must be 0..65535, got ${r.port}`);
  }
  if (!Number.isInteger(r.len) || r.len < 1 || r.len > MAX_CAPTURE) {
    throw new SettingsError(field, `len must be 1..${MAX_CAPTURE}, got ${r.len}`);
  }
}

/**
 * Checks every field.
 * @throws SettingsError naming the first bad field.
 */
export function validateSettings(s: TraceSettings): void {
  if (!AGGREGATION_LEVELS.includes(s.aggregation)) {
    throw new SettingsError(
      "aggregation",
      `must be one of ${AGGREGATION_LEVELS.join(", ")}, got ${String(s.aggregation)}`,
    );
  }
  if (
    !Number.isInteger(s.reportIntervalMs) ||
    s.reportIntervalMs < 0 ||
    s.reportIntervalMs > 0xffffffff
  ) {
    throw new SettingsError(
      "reportIntervalMs",
      `must be an integer 0..4294967295, got ${s.reportIntervalMs}`,
    );
  }
  if (typeof s.debug !== "boolean") throw new SettingsError("debug", "must be true or false");
  if (!Array.isArray(s.captureRules) || s.captureRules.length > MAX_CAPTURE_RULES) {
    throw new SettingsError("captureRules", `at most ${MAX_CAPTURE_RULES} rules`);
  }
  s.captureRules.forEach(checkCaptureRule);
}

/** `struct pscope_settings` bytes for `s` (validated). */
export function encodeSettings(s: TraceSettings): Uint8Array {
  validateSettings(s);
  const out = new Uint8Array(SETTINGS_LAYOUT.size);
  const v = new DataView(out.buffer);
  const f = SETTINGS_LAYOUT.fields;
  const levels: Record<AggregationLevel, number> = {
    none: AGGREGATION.NONE,
    low: AGGREGATION.LOW,
    medium: AGGREGATION.MEDIUM,
    maximum: AGGREGATION.MAXIMUM,
  };
  v.setUint32(f.aggregation.offset, levels[s.aggregation], true);
  v.setUint32(f.report_interval_ms.offset, s.reportIntervalMs, true);
  v.setUint32(f.debug.offset, s.debug ? 1 : 0, true);
  v.setUint32(f.n_capture_rules.offset, s.captureRules.length, true);
  const r = CAPTURE_RULE_LAYOUT.fields;
  s.captureRules.forEach((rule, i) => {
    const at = f.capture_rules.offset + i * CAPTURE_RULE_LAYOUT.size;
    v.setUint8(at + r.proto.offset, rule.proto);
    v.setUint16(at + r.port.offset, rule.port, true);
    v.setUint16(at + r.len.offset, rule.len, true);
  });
  return out;
}

/** Network-order bytes of an IPv4 (4) or IPv6 (16) address (no embedded IPv4 form). */
export function ipBytes(ip: string): Uint8Array {
  if (isIPv4(ip)) return Uint8Array.from(ip.split(".").map(Number));
  if (!isIPv6(ip) || ip.includes(".")) throw new RangeError(`not a supported IP address: ${ip}`);
  const [head = "", tail] = ip.split("::");
  const words = (part: string) =>
    part === "" ? [] : part.split(":").map((w) => Number.parseInt(w, 16));
  const h = words(head);
  const t = tail === undefined ? [] : words(tail);
  const all = [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[i * 2] = (w >> 8) & 0xff;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

/** One connection, as given to {@link encodeConnectionKey}: any direction. */
export interface ConnectionQuery {
  /** IPPROTO_* number. */
  proto: number;
  src: string;
  dst: string;
  /** Ports (host order); ICMP echo: the identifier on both sides; 0 without ports. */
  sport: number;
  dport: number;
  /** Device the packets were seen on (skb->ifindex). */
  ifindex: number;
  /** Network namespace cookie of that device. */
  netnsCookie: bigint;
}

/** A connection-table entry, sides named by address and port. */
export interface ConnectionInfo {
  initiator: { ip: string; port: number };
  responder: { ip: string; port: number };
  firstSeenNs: bigint;
  lastSeenNs: bigint;
  lastReportNs: bigint;
  /** [from the initiator, from the responder]. */
  packets: [bigint, bigint];
  bytes: [bigint, bigint];
  tcpFlags: [number, number];
  reportedFlags: [number, number];
  closing: boolean;
  policyAction: number;
  policyRev: number;
  policyRuleId: number;
}

/** The kernel's order of endpoints: address words as little-endian u32, then port. */
function endpointLe(a: Uint8Array, ap: number, b: Uint8Array, bp: number): boolean {
  const va = new DataView(a.buffer, a.byteOffset, 16);
  const vb = new DataView(b.buffer, b.byteOffset, 16);
  for (let i = 0; i < 16; i += 4) {
    const x = va.getUint32(i, true);
    const y = vb.getUint32(i, true);
    if (x !== y) return x < y;
  }
  return ap <= bp;
}

function addr16(ip: string): { bytes: Uint8Array; family: number } {
  const b = ipBytes(ip);
  const out = new Uint8Array(16);
  out.set(b);
  return { bytes: out, family: b.length === 4 ? 4 : 6 };
}

/** `struct pscope_ct_key` bytes for a connection, plus whether `src` is the key's lo side. */
export function encodeConnectionKey(q: ConnectionQuery): { key: Uint8Array; srcIsLo: boolean } {
  const s = addr16(q.src);
  const d = addr16(q.dst);
  const srcIsLo = endpointLe(s.bytes, q.sport, d.bytes, q.dport);
  const key = new Uint8Array(CT_KEY_LAYOUT.size);
  const v = new DataView(key.buffer);
  const f = CT_KEY_LAYOUT.fields;
  v.setBigUint64(f.netns_cookie.offset, q.netnsCookie, true);
  v.setUint32(f.ifindex.offset, q.ifindex, true);
  v.setUint8(f.proto.offset, q.proto);
  v.setUint8(f.family.offset, s.family);
  key.set(srcIsLo ? s.bytes : d.bytes, f.addr_lo.offset);
  key.set(srcIsLo ? d.bytes : s.bytes, f.addr_hi.offset);
  v.setUint16(f.port_lo.offset, srcIsLo ? q.sport : q.dport, true);
  v.setUint16(f.port_hi.offset, srcIsLo ? q.dport : q.sport, true);
  return { key, srcIsLo };
}

/** Decodes `struct pscope_ct_entry` bytes for the connection `q` names. */
export function decodeConnectionEntry(
  q: ConnectionQuery,
  srcIsLo: boolean,
  bytes: Uint8Array,
): ConnectionInfo {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const f = CT_ENTRY_LAYOUT.fields;
  const initiatorIsLo = v.getUint8(f.initiator_is_lo.offset) !== 0;
  const src = { ip: q.src, port: q.sport };
  const dst = { ip: q.dst, port: q.dport };
  const srcIsInitiator = initiatorIsLo === srcIsLo;
  const u64 = (off: number) => v.getBigUint64(off, true);
  return {
    initiator: srcIsInitiator ? src : dst,
    responder: srcIsInitiator ? dst : src,
    firstSeenNs: u64(f.first_seen_ns.offset),
    lastSeenNs: u64(f.last_seen_ns.offset),
    lastReportNs: u64(f.last_report_ns.offset),
    packets: [u64(f.packets.offset), u64(f.packets.offset + 8)],
    bytes: [u64(f.bytes.offset), u64(f.bytes.offset + 8)],
    tcpFlags: [v.getUint8(f.tcp_flags.offset), v.getUint8(f.tcp_flags.offset + 1)],
    reportedFlags: [v.getUint8(f.reported_flags.offset), v.getUint8(f.reported_flags.offset + 1)],
    closing: v.getUint8(f.closing.offset) !== 0,
    policyAction: v.getUint8(f.policy_action.offset),
    policyRev: v.getUint32(f.policy_rev.offset, true),
    policyRuleId: v.getUint32(f.policy_rule_id.offset, true),
  };
}
