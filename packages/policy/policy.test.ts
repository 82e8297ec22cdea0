import { describe, expect, test } from "bun:test";
import { POLICY_ACTION, POLICY_DIRECTION, POLICY_MATCH } from "@periscope/wire";
import {
  compilePolicies,
  type Policy,
  PolicyError,
  parseCidr,
  parsePolicy,
  parsePolicyText,
  policyToJson,
  type SubjectResolver,
} from "./index.ts";

const YAML = `
name: web
mode: enforce
rules:
  - id: 10
    name: http-from-lan
    action: allow
    direction: ingress
    endpoint: app=web
    peers: [10.0.0.0/8, "fd00::/8"]
    protocol: tcp
    ports: 80-81
  - id: 11
    name: no-db
    action: deny
    direction: egress
    interface: "pods/eth*"
    peers: 10.9.9.9
---
name: watch
mode: audit
rules:
  - { id: 20, name: ping, action: deny, direction: ingress, interface: "pscope-*", protocol: icmp }
`;

function errorOf(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PolicyError) return e;
    throw e;
  }
  throw new Error("no PolicyError thrown");
}

describe("policy parse", () => {
  test("policy parse - YAML documents with rules, peers, ports and defaults", () => {
    const [web, watch] = parsePolicyText(YAML);
    expect(web?.name).toBe("web");
    expect(web?.rules[0]?.peers.map((c) => c.text)).toEqual(["10.0.0.0/8", "fd00::/8"]);
    expect(web?.rules[0]?.ports).toEqual({ from: 80, to: 81 });
    expect(web?.rules[1]?.peers[0]?.text).toBe("10.9.9.9/32");
    expect(web?.rules[1]?.protocol).toBe("any");
    expect(watch?.mode).toBe("audit");
    expect(watch?.rules[0]?.subject).toEqual({ kind: "interface", pattern: "pscope-*" });
  });

  test("policy parse - JSON round trip through the stored form", () => {
    const policies = parsePolicyText(YAML);
    const json = JSON.stringify(policies.map(policyToJson));
    expect(parsePolicyText(json).map(policyToJson)).toEqual(policies.map(policyToJson));
  });

  test.each<[string, unknown, string]>([
    [
      "bad port",
      {
        name: "p",
        rules: [
          {
            id: 1,
            name: "r",
            action: "allow",
            direction: "ingress",
            interface: "x",
            ports: "99999",
          },
        ],
      },
      'policy "p", rule 1 ("r"), field "ports": "99999" is not a port (0..65535)',
    ],
    [
      "bad cidr",
      {
        name: "p",
        rules: [
          {
            id: 1,
            name: "r",
            action: "deny",
            direction: "egress",
            interface: "x",
            peers: ["10.0.0.0/8", "10.1/33"],
          },
        ],
      },
      'policy "p", rule 1 ("r"), field "peers[1]": "10.1/33" is not an IP address or CIDR',
    ],
    [
      "bad action",
      {
        name: "p",
        rules: [
          { id: 1, name: "ok", action: "allow", direction: "ingress", interface: "x" },
          { id: 2, name: "r2", action: "permit", direction: "ingress", interface: "x" },
        ],
      },
      'policy "p", rule 2 ("r2"), field "action": must be one of allow, deny, got "permit"',
    ],
    [
      "unknown field",
      {
        name: "p",
        rules: [
          { id: 1, name: "r", action: "allow", direction: "ingress", interface: "x", port: 80 },
        ],
      },
      'policy "p", rule 1 ("r"), field "port": unknown field',
    ],
    [
      "no subject",
      { name: "p", rules: [{ id: 1, name: "r", action: "allow", direction: "ingress" }] },
      'policy "p", rule 1 ("r"), field "interface": a rule needs "interface" or "endpoint"',
    ],
    [
      "bad selector",
      {
        name: "p",
        rules: [{ id: 1, name: "r", action: "allow", direction: "ingress", endpoint: "app in (" }],
      },
      'policy "p", rule 1 ("r"), field "endpoint": ',
    ],
    [
      "duplicate id",
      {
        name: "p",
        rules: [
          { id: 1, name: "a", action: "allow", direction: "ingress", interface: "x" },
          { id: 1, name: "b", action: "allow", direction: "ingress", interface: "x" },
        ],
      },
      'policy "p", rule 2 ("b"), field "id": id 1 is also rule "a"\'s',
    ],
    [
      "ports with icmp",
      {
        name: "p",
        rules: [
          {
            id: 1,
            name: "r",
            action: "allow",
            direction: "ingress",
            interface: "x",
            protocol: "icmp",
            ports: 1,
          },
        ],
      },
      'policy "p", rule 1 ("r"), field "ports": ports need protocol tcp, udp, sctp or any, not icmp',
    ],
    [
      "bad mode",
      { name: "p", mode: "strict", rules: [] },
      'policy "p", field "mode": must be one of enforce, audit, got "strict"',
    ],
    ["bad name", { name: "a b", rules: [] }, 'field "name": must match'],
  ])("policy parse - rejects %s naming rule and field", (_what, value, message) => {
    expect(errorOf(() => parsePolicy(value)).message).toStartWith(message);
  });

  test("policy parse - a rule id used by two policies is rejected", () => {
    const text = JSON.stringify([
      {
        name: "a",
        rules: [{ id: 5, name: "r", action: "allow", direction: "ingress", interface: "x" }],
      },
      {
        name: "b",
        rules: [{ id: 5, name: "s", action: "allow", direction: "ingress", interface: "y" }],
      },
    ]);
    expect(errorOf(() => parsePolicyText(text)).message).toBe(
      'policy "b", rule 1 ("s"), field "id": id 5 is also used by policy "a" rule "r"',
    );
  });

  test("policy parse - YAML syntax errors are PolicyErrors", () => {
    expect(errorOf(() => parsePolicyText("name: [unclosed")).message).toStartWith("not valid YAML");
  });

  test("policy parse - CIDR host bits are cleared", () => {
    const c = parseCidr("10.1.2.3/12");
    expect(typeof c === "string" ? c : c.text).toBe("10.0.0.0/12");
    const v6 = parseCidr("fd00:1:2::5/40");
    expect(typeof v6 === "string" ? v6 : v6.text).toBe("fd00:1::/40");
  });
});

describe("policy compile", () => {
  const resolver: SubjectResolver = {
    devices: (pattern) => (pattern === "pscope-*" ? [{ netnsCookie: 7n, ifindex: 3 }] : []),
    endpoints: () => [
      { ip: "10.1.0.5", labels: ["k8s:app=web"] },
      { ip: "10.1.0.6", labels: ["app=db"] },
    ],
  };

  test("policy compile - rules ordered deny, audit, allow with match types and subjects", () => {
    const compiled = compilePolicies(parsePolicyText(YAML), resolver);
    expect(compiled.rules.map((r) => [r.id, r.action, r.proto])).toEqual([
      [11, POLICY_ACTION.DENY, 0],
      [20, POLICY_ACTION.AUDIT, 1],
      [20, POLICY_ACTION.AUDIT, 58],
      [10, POLICY_ACTION.ALLOW, 6],
      [10, POLICY_ACTION.ALLOW, 6],
    ]);
    const allow = compiled.rules[3];
    expect(allow?.matchType).toBe(POLICY_MATCH.L3_L4);
    expect(allow?.direction).toBe(POLICY_DIRECTION.INGRESS);
    expect(compiled.rules[0]?.matchType).toBe(POLICY_MATCH.L3_ONLY);
    expect(compiled.rules[1]?.matchType).toBe(POLICY_MATCH.L4_ONLY);
    // subjects: web/app=web (bit 0), web/pods/eth* (bit 1), watch/pscope-* (bit 2)
    expect(compiled.set.selected).toEqual([0b101n, 0b010n]);
    expect(compiled.set.allowSelected).toEqual([0b001n, 0n]);
    expect(compiled.set.enforce).toBe(0b011n);
    expect(compiled.endpoints.map((e) => [Array.from(e.addr).join("."), e.bits])).toEqual([
      ["10.1.0.5", 1n],
    ]);
    expect(compiled.devices).toEqual([{ netnsCookie: 7n, ifindex: 3, bits: 4n }]);
  });

  test("policy compile - the fingerprint follows what the kernel would hold", () => {
    const policies = parsePolicyText(YAML);
    const a = compilePolicies(policies, resolver);
    expect(compilePolicies(policies, resolver).fingerprint).toBe(a.fingerprint);
    const moved: SubjectResolver = {
      ...resolver,
      devices: () => [{ netnsCookie: 7n, ifindex: 4 }],
    };
    expect(compilePolicies(policies, moved).fingerprint).not.toBe(a.fingerprint);
  });

  test("policy compile - more than 64 subjects is refused naming the rule", () => {
    const p: Policy = parsePolicy({
      name: "many",
      rules: Array.from({ length: 65 }, (_, i) => ({
        id: i + 1,
        name: `r${i}`,
        action: "allow",
        direction: "ingress",
        interface: `if${i}`,
      })),
    });
    expect(errorOf(() => compilePolicies([p], resolver)).message).toStartWith(
      'policy "many", rule 65 ("r64"), field "interface": more than 64',
    );
  });
});
