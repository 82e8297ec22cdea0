import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Flow, FlowFilterSchema, FlowSchema, Verdict } from "@periscope/proto";
import {
  CelCompileError,
  celEvaluationErrors,
  compileCelExpressions,
  onCelEvaluationError,
} from "./cel.ts";
import { compileFlowFilter } from "./compile.ts";
import { FilterError } from "./errors.ts";

/** A forwarded TCP flow to port 80 between two demo pods. */
const web: Flow = create(FlowSchema, {
  time: timestampFromMs(1_700_000_000_000),
  verdict: Verdict.FORWARDED,
  IP: { source: "10.0.0.5", destination: "10.0.1.7" },
  l4: {
    protocol: {
      case: "TCP",
      value: { sourcePort: 40000, destinationPort: 80, flags: { SYN: true } },
    },
  },
  source: {
    namespace: "demo",
    podName: "frontend-7d9f",
    labels: ["k8s:app=frontend", "k8s:tier=web"],
  },
  destination: { namespace: "demo", podName: "api-0", labels: ["k8s:app=api"] },
  nodeName: "kind/node-1",
});
/** A dropped UDP flow to port 53 from another namespace. */
const drop: Flow = create(FlowSchema, {
  verdict: Verdict.DROPPED,
  IP: { source: "10.0.9.1", destination: "10.0.0.10" },
  l4: { protocol: { case: "UDP", value: { sourcePort: 5353, destinationPort: 53 } } },
  source: { namespace: "kube-system", podName: "coredns-1" },
  l7: { record: { case: "dns", value: { query: "api.example.com.", rcode: 3 } } },
});
const flows = { web, drop };
type Name = keyof typeof flows;
const matching = (exprs: string[]): Name[] => {
  const p = compileCelExpressions(exprs);
  return (Object.keys(flows) as Name[]).filter((n) => p(flows[n]));
};

describe("cel", () => {
  const cases: [string, string[], Name[]][] = [
    ["verdict enum", ["_flow.verdict == Verdict.DROPPED"], ["drop"]],
    ["fully qualified enum", ["_flow.verdict == flow.Verdict.FORWARDED"], ["web"]],
    ["verdict as a number", ["_flow.verdict == 2"], ["drop"]],
    ["nested oneof field (uint vs int)", ["_flow.l4.TCP.destination_port == 80"], ["web"]],
    ["uint comparison", ["has(_flow.l4.UDP) && _flow.l4.UDP.destination_port < 1024u"], ["drop"]],
    ["mixed numeric comparison", ["_flow.l4.UDP.destination_port > 50"], ["drop"]],
    ["unset message reads as defaults", ["_flow.l4.UDP.destination_port == 0u"], ["web"]],
    ["has() on a oneof member", ["has(_flow.l4.TCP)"], ["web"]],
    ["bool field", ["_flow.l4.TCP.flags.SYN"], ["web"]],
    ["string equality", ['_flow.source.namespace == "demo"'], ["web"]],
    ["startsWith", ['_flow.source.pod_name.startsWith("core")'], ["drop"]],
    [
      "endsWith and &&",
      ['_flow.l7.dns.query.endsWith(".com.") && _flow.l7.dns.rcode == 3u'],
      ["drop"],
    ],
    ["contains", ['_flow.node_name.contains("/node-")'], ["web"]],
    ["matches (RE2)", ['_flow.IP.source.matches("^10\\\\.0\\\\.0\\\\.[0-9]+$")'], ["web"]],
    ["strings extension", ['_flow.source.namespace.upperAscii() == "KUBE-SYSTEM"'], ["drop"]],
    ["indexOf", ['_flow.destination.pod_name.indexOf("-") == 3'], ["web"]],
    ["list exists", ['_flow.source.labels.exists(l, l == "k8s:tier=web")'], ["web"]],
    [
      "list all on an empty list",
      ['_flow.source.labels.all(l, l.startsWith("k8s:"))'],
      ["web", "drop"],
    ],
    ["in a list literal", ['_flow.source.namespace in ["kube-system", "prod"]'], ["drop"]],
    ["size of a list", ["size(_flow.source.labels) == 2"], ["web"]],
    ["filter macro", ['_flow.source.labels.filter(l, l.contains("app")).size() == 1'], ["web"]],
    [
      "ternary",
      ["_flow.verdict == Verdict.DROPPED ? true : _flow.l4.TCP.destination_port == 80"],
      ["web", "drop"],
    ],
    ["timestamp field", ["_flow.time.getFullYear() == 2023"], ["web"]],
    ["timestamp comparison", ['_flow.time > timestamp("2020-01-01T00:00:00Z")'], ["web"]],
    [
      "any of several expressions",
      ['_flow.source.namespace == "nope"', "has(_flow.l7.dns)"],
      ["drop"],
    ],
    ["negation", ["!(_flow.verdict == Verdict.DROPPED)"], ["web"]],
    ["constant true", ["true"], ["web", "drop"]],
  ];
  test.each(cases)("matches - %s", (_name, exprs, expected) => {
    expect(matching(exprs)).toEqual(expected);
  });

  const invalid: [string, string, string][] = [
    ["a syntax error", "_flow.verdict ==", "_flow.verdict =="],
    [
      "an unknown field",
      "_flow.sauce.namespace == 'x'",
      "undefined field 'sauce' on type 'flow.Flow'",
    ],
    [
      "an unknown nested field",
      "_flow.l4.TCP.port == 80",
      "undefined field 'port' on type 'flow.TCP'",
    ],
    ["an unknown variable", "flow_.verdict == 1", "undeclared reference to 'flow_.verdict'"],
    ["an unknown enum value", "_flow.verdict == Verdict.BLOCKED", "Verdict.BLOCKED"],
    ["an unknown function", "_flow.source.namespace.nope()", "undeclared reference to 'nope'"],
    [
      "a wrong argument type",
      "_flow.source.namespace.startsWith(1)",
      "no matching overload for 'startsWith'",
    ],
    [
      "string compared with a number",
      "_flow.source.namespace == 1",
      "no matching overload for '_==_'",
    ],
    ["string plus int", '_flow.source.namespace + 1 == "x"', "no matching overload for '_+_'"],
    ["a non-bool result (enum)", "_flow.verdict", "must return bool, returns int"],
    ["a non-bool result (string)", "_flow.source.namespace", "must return bool, returns string"],
    ["a non-bool result (list)", "_flow.source.labels", "must return bool, returns list(string)"],
    [
      "selecting a field of a string",
      "_flow.source.namespace.x == 1",
      "does not support field selection",
    ],
  ];
  test.each(invalid)("rejects %s", (_name, expr, inMessage) => {
    expect(() => compileCelExpressions([expr])).toThrow(CelCompileError);
    let caught: unknown;
    try {
      compileFlowFilter(
        create(FlowFilterSchema, { experimental: { celExpression: ["true", expr] } }),
      );
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FilterError);
    const err = caught as FilterError;
    expect(err.field).toBe("experimental.cel_expression");
    expect(err.message).toContain("experimental.cel_expression");
    expect(err.message).toContain(inMessage);
  });

  test("an evaluation error on a flow is no match and is counted", () => {
    const p = compileCelExpressions(['_flow.source.labels[5] == "x"', "has(_flow.l7.dns)"]);
    const before = celEvaluationErrors();
    expect(p(web)).toBe(false);
    expect(celEvaluationErrors()).toBe(before + 1);
    // the second expression still decides for the other flow
    expect(p(drop)).toBe(true);
    expect(celEvaluationErrors()).toBe(before + 2);
  });

  test("evaluation errors reach listeners until they unsubscribe", () => {
    const p = compileCelExpressions(["_flow.source.labels[9] == 'x'"]);
    const seen: string[] = [];
    const stop = onCelEvaluationError((m) => seen.push(m));
    expect(p(web)).toBe(false);
    stop();
    expect(p(web)).toBe(false);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toContain("9");
  });

  test("a dynamic non-bool result is no match and is counted", () => {
    const p = compileCelExpressions([
      '{"a": true, "b": 1}[_flow.source.namespace == "demo" ? "b" : "a"]',
    ]);
    const before = celEvaluationErrors();
    expect(p(web)).toBe(false);
    expect(celEvaluationErrors()).toBe(before + 1);
    expect(p(drop)).toBe(true);
    expect(celEvaluationErrors()).toBe(before + 1);
  });

  test("combines with other criteria of the same filter (AND)", () => {
    const p = compileFlowFilter(
      create(FlowFilterSchema, {
        verdict: [Verdict.FORWARDED],
        experimental: { celExpression: ["has(_flow.l7.dns)"] },
      }),
    );
    expect(p(web)).toBe(false);
    expect(p(drop)).toBe(false);
  });
});
