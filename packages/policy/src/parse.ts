import { compileLabelSelector } from "@periscope/flow";
import { parseAllDocuments } from "yaml";
import { parseCidr } from "./cidr.ts";
import { PolicyError, type PolicyErrorLocation } from "./errors.ts";
import {
  type Cidr,
  MAX_POLICY_RULES,
  type Policy,
  type PolicyRule,
  type PortRange,
  type RuleProtocol,
  type RuleSubject,
} from "./model.ts";

/** Policy names: also the KV key, so letters, digits, `-`, `_`, `.`; 1..63 characters. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const POLICY_FIELDS = new Set(["name", "mode", "rules"]);
const RULE_FIELDS = new Set([
  "id",
  "name",
  "action",
  "direction",
  "interface",
  "endpoint",
  "peers",
  "protocol",
  "ports",
]);
const PROTOCOLS: readonly RuleProtocol[] = ["tcp", "udp", "sctp", "icmp", "any"];
const MAX_RULE_ID = 0xffff_ffff;

type Where = PolicyErrorLocation;

function fail(where: Where, problem: string): never {
  throw new PolicyError(where, problem);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function oneOf<T extends string>(where: Where, value: unknown, allowed: readonly T[], def?: T): T {
  if (value === undefined && def !== undefined) return def;
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value.toLowerCase())) {
    fail(where, `must be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
  }
  return value.toLowerCase() as T;
}

function parsePort(where: Where, text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    fail(where, `"${text}" is not a port (0..65535)`);
  }
  return Number(text);
}

function parsePorts(where: Where, value: unknown): PortRange | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "number") value = String(value);
  if (typeof value !== "string")
    fail(where, `must be a port or "from-to", got ${JSON.stringify(value)}`);
  const [fromText = "", toText, extra] = value.split("-").map((s) => s.trim());
  if (extra !== undefined) fail(where, `"${value}" is not a port or "from-to" range`);
  const from = parsePort(where, fromText);
  const to = toText === undefined ? from : parsePort(where, toText);
  if (to < from) fail(where, `range "${value}" ends before it starts`);
  return { from, to };
}

function parsePeers(where: Where, value: unknown): Cidr[] {
  if (value === undefined) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list)) fail(where, "must be a CIDR or a list of CIDRs");
  return list.map((item, i) => {
    const at = { ...where, field: `${where.field}[${i}]` };
    if (typeof item !== "string") fail(at, `must be a CIDR string, got ${JSON.stringify(item)}`);
    const c = parseCidr(item);
    if (typeof c === "string") fail(at, c);
    return c;
  });
}

/** Checks an interface pattern's shape: `[<netns>/]<ifname>`, balanced brackets. */
function checkInterfacePattern(where: Where, pattern: string): void {
  const parts = pattern.split("/");
  if (parts.length > 2 || parts.some((p) => p === "")) {
    fail(where, `"${pattern}" is not "[<netns>/]<ifname>"`);
  }
  for (const p of parts) {
    let open = false;
    for (const c of p) {
      if (c === "[") {
        if (open) fail(where, `"${pattern}" has a nested "["`);
        open = true;
      } else if (c === "]") open = false;
    }
    if (open) fail(where, `"${pattern}" has an unterminated "["`);
  }
}

function parseSubject(where: Where, rule: Record<string, unknown>): RuleSubject {
  const { interface: iface, endpoint } = rule;
  if (iface !== undefined && endpoint !== undefined) {
    fail({ ...where, field: "interface" }, `give "interface" or "endpoint", not both`);
  }
  if (iface !== undefined) {
    const at = { ...where, field: "interface" };
    if (typeof iface !== "string" || iface.trim() === "") fail(at, "must be a non-empty string");
    checkInterfacePattern(at, iface.trim());
    return { kind: "interface", pattern: iface.trim() };
  }
  if (endpoint !== undefined) {
    const at = { ...where, field: "endpoint" };
    if (typeof endpoint !== "string" || endpoint.trim() === "") {
      fail(at, "must be a non-empty label selector");
    }
    try {
      compileLabelSelector(endpoint);
    } catch (err) {
      fail(at, err instanceof Error ? err.message : String(err));
    }
    return { kind: "endpoint", selector: endpoint.trim() };
  }
  return fail({ ...where, field: "interface" }, `a rule needs "interface" or "endpoint"`);
}

function parseRule(policy: string, index: number, value: unknown): PolicyRule {
  const base: Where = { policy, ruleIndex: index };
  if (!isObject(value)) fail(base, "a rule must be an object");
  const name = value.name;
  const where: Where =
    typeof name === "string" && name !== "" ? { ...base, rule: name } : { ...base };
  for (const key of Object.keys(value)) {
    if (!RULE_FIELDS.has(key)) fail({ ...where, field: key }, "unknown field");
  }
  if (typeof name !== "string" || !NAME.test(name)) {
    fail({ ...where, field: "name" }, `must match ${NAME.source}, got ${JSON.stringify(name)}`);
  }
  const id = value.id;
  if (typeof id !== "number" || !Number.isInteger(id) || id < 1 || id > MAX_RULE_ID) {
    fail(
      { ...where, field: "id" },
      `must be an integer in 1..${MAX_RULE_ID}, got ${JSON.stringify(id)}`,
    );
  }
  const action = oneOf({ ...where, field: "action" }, value.action, ["allow", "deny"] as const);
  const direction = oneOf({ ...where, field: "direction" }, value.direction, [
    "ingress",
    "egress",
  ] as const);
  const subject = parseSubject(where, value);
  const peers = parsePeers({ ...where, field: "peers" }, value.peers);
  const protocol = oneOf({ ...where, field: "protocol" }, value.protocol, PROTOCOLS, "any");
  const ports = parsePorts({ ...where, field: "ports" }, value.ports);
  if (ports && protocol === "icmp") {
    fail({ ...where, field: "ports" }, "ports need protocol tcp, udp, sctp or any, not icmp");
  }
  return {
    id,
    name,
    action,
    direction,
    subject,
    peers,
    protocol,
    ...(ports ? { ports } : {}),
  };
}

/**
 * Validates one policy object (as parsed from YAML or JSON, or stored in the KV
 * bucket): name, mode (default enforce), rules with unique ids and names.
 * @throws PolicyError naming the policy, rule and field that are wrong.
 */
export function parsePolicy(value: unknown): Policy {
  if (!isObject(value)) fail({}, "a policy must be an object with name, mode and rules");
  const name = value.name;
  if (typeof name !== "string" || !NAME.test(name)) {
    fail({ field: "name" }, `must match ${NAME.source}, got ${JSON.stringify(name)}`);
  }
  for (const key of Object.keys(value)) {
    if (!POLICY_FIELDS.has(key)) fail({ policy: name, field: key }, "unknown field");
  }
  const mode = oneOf(
    { policy: name, field: "mode" },
    value.mode,
    ["enforce", "audit"] as const,
    "enforce",
  );
  const rulesValue = value.rules;
  if (!Array.isArray(rulesValue)) fail({ policy: name, field: "rules" }, "must be a list of rules");
  if (rulesValue.length > MAX_POLICY_RULES) {
    fail(
      { policy: name, field: "rules" },
      `has ${rulesValue.length} rules, at most ${MAX_POLICY_RULES}`,
    );
  }
  const rules = rulesValue.map((r, i) => parseRule(name, i, r));
  const ids = new Map<number, string>();
  const names = new Set<string>();
  rules.forEach((r, i) => {
    const where = { policy: name, ruleIndex: i, rule: r.name };
    const other = ids.get(r.id);
    if (other !== undefined)
      fail({ ...where, field: "id" }, `id ${r.id} is also rule "${other}"'s`);
    if (names.has(r.name)) fail({ ...where, field: "name" }, "another rule has this name");
    ids.set(r.id, r.name);
    names.add(r.name);
  });
  return { name, mode, rules };
}

/**
 * Parses a policy file: JSON (one policy or a list) or YAML (one policy, a list,
 * or several `---` documents).
 * @throws PolicyError for syntax errors and invalid policies.
 */
export function parsePolicyText(text: string): Policy[] {
  let values: unknown[];
  const trimmed = text.trimStart();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    try {
      values = [JSON.parse(text)];
    } catch (err) {
      throw new PolicyError(
        {},
        `not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  } else {
    const docs = parseAllDocuments(text);
    if (!Array.isArray(docs)) values = [];
    else {
      for (const d of docs) {
        const e = d.errors[0];
        if (e !== undefined) throw new PolicyError({}, `not valid YAML: ${e.message}`);
      }
      values = docs.map((d) => d.toJS() as unknown).filter((v) => v !== null && v !== undefined);
    }
  }
  const flat = values.flatMap((v) => (Array.isArray(v) ? v : [v]));
  if (flat.length === 0) throw new PolicyError({}, "the file holds no policy");
  const policies = flat.map(parsePolicy);
  checkDistinct(policies);
  return policies;
}

/**
 * Checks that policy names are distinct and rule ids unique over all `policies`.
 * @throws PolicyError naming the second policy and rule that clash.
 */
export function checkDistinct(policies: readonly Policy[]): void {
  const names = new Set<string>();
  const ids = new Map<number, string>();
  for (const p of policies) {
    if (names.has(p.name)) fail({ policy: p.name, field: "name" }, "another policy has this name");
    names.add(p.name);
    p.rules.forEach((r, i) => {
      const other = ids.get(r.id);
      if (other !== undefined) {
        fail(
          { policy: p.name, ruleIndex: i, rule: r.name, field: "id" },
          `id ${r.id} is also used by ${other}`,
        );
      }
      ids.set(r.id, `policy "${p.name}" rule "${r.name}"`);
    });
  }
}

/** The stored (and printed) form of a policy: what {@link parsePolicy} reads back. */
export function policyToJson(p: Policy): Record<string, unknown> {
  return {
    name: p.name,
    mode: p.mode,
    rules: p.rules.map((r) => ({
      id: r.id,
      name: r.name,
      action: r.action,
      direction: r.direction,
      ...(r.subject.kind === "interface"
        ? { interface: r.subject.pattern }
        : { endpoint: r.subject.selector }),
      ...(r.peers.length > 0 ? { peers: r.peers.map((c) => c.text) } : {}),
      protocol: r.protocol,
      ...(r.ports
        ? {
            ports:
              r.ports.from === r.ports.to ? String(r.ports.from) : `${r.ports.from}-${r.ports.to}`,
          }
        : {}),
    })),
  };
}
