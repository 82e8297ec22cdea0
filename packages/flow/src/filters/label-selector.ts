/**
 * Kubernetes-style label selectors over Cilium labels, as Hubble's
 * source_label / destination_label filters use them. A selector is a comma
 * list of requirements, all of which must hold:
 * `key`, `!key`, `key=value`, `key==value`, `key!=value`,
 * `key in (a, b)`, `key notin (a, b)`, and `key > n`, `key < n` for an
 * integer n (true when the label's value is an integer beyond n). A key may carry a Cilium source
 * prefix ("k8s:app"); without one (or with "any:") it matches labels of any
 * source. Flow labels are "source:key=value" or "key=value" strings.
 */

/** A flow label split into its parts. */
export interface ParsedLabel {
  source: string;
  key: string;
  value: string;
}

type Op = "exists" | "notexists" | "eq" | "neq" | "in" | "notin" | "gt" | "lt";

interface Requirement {
  source: string | undefined;
  key: string;
  op: Op;
  values: string[];
}

/** Compiled selector: true when the labels satisfy every requirement. */
export type LabelSelector = (labels: readonly ParsedLabel[]) => boolean;

/** Split "k8s:app=x" into source "k8s", key "app", value "x" (source "" when absent). */
export function parseLabel(label: string): ParsedLabel {
  const eq = label.indexOf("=");
  const colon = label.indexOf(":");
  let source = "";
  let rest = label;
  if (colon >= 0 && (eq < 0 || colon < eq)) {
    source = label.slice(0, colon);
    rest = label.slice(colon + 1);
  }
  const eq2 = rest.indexOf("=");
  if (eq2 < 0) return { source, key: rest, value: "" };
  return { source, key: rest.slice(0, eq2), value: rest.slice(eq2 + 1) };
}

const KEY = "[A-Za-z0-9][-A-Za-z0-9_./:]*";
const VALUE = "[-A-Za-z0-9_.]*";
const RE_NOT_EXISTS = new RegExp(`^!\\s*(${KEY})$`);
const RE_SET = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\((.*)\\)$`);
const RE_EQ = new RegExp(`^(${KEY})\\s*(==|!=|=)\\s*(${VALUE})$`);
const RE_CMP = new RegExp(`^(${KEY})\\s*([<>])\\s*(${VALUE})$`);
const RE_EXISTS = new RegExp(`^(${KEY})$`);
const RE_INT = /^-?\d+$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** The value as a 64-bit integer, or undefined when it is not one. */
function int64(value: string): bigint | undefined {
  if (!RE_INT.test(value)) return undefined;
  const n = BigInt(value);
  return n < INT64_MIN || n > INT64_MAX ? undefined : n;
}
const RE_VALUE = new RegExp(`^${VALUE}$`);

function splitTopLevel(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const ch = selector[i];
    if (ch === "(") depth++;
    else if (ch === ")") depth--;
    else if (ch === "," && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(selector.slice(start));
  return parts.map((p) => p.trim());
}

function splitKey(key: string): { source: string | undefined; key: string } {
  const colon = key.indexOf(":");
  if (colon < 0) return { source: undefined, key };
  const source = key.slice(0, colon);
  return { source: source === "any" ? undefined : source, key: key.slice(colon + 1) };
}

function parseRequirement(text: string): Requirement {
  let m = RE_NOT_EXISTS.exec(text);
  if (m?.[1]) return { ...splitKey(m[1]), op: "notexists", values: [] };
  m = RE_SET.exec(text);
  if (m?.[1] && m[2] && m[3] !== undefined) {
    const values = m[3].split(",").map((v) => v.trim());
    if (values.some((v) => !RE_VALUE.test(v))) {
      throw new Error(`invalid value list in ${JSON.stringify(text)}`);
    }
    return { ...splitKey(m[1]), op: m[2] === "in" ? "in" : "notin", values };
  }
  m = RE_EQ.exec(text);
  if (m?.[1] && m[2] && m[3] !== undefined) {
    return { ...splitKey(m[1]), op: m[2] === "!=" ? "neq" : "eq", values: [m[3]] };
  }
  m = RE_CMP.exec(text);
  if (m?.[1] && m[2] && m[3] !== undefined) {
    if (int64(m[3]) === undefined) {
      throw new Error(`for '>' and '<' the value must be an integer, got ${JSON.stringify(text)}`);
    }
    return { ...splitKey(m[1]), op: m[2] === ">" ? "gt" : "lt", values: [m[3]] };
  }
  m = RE_EXISTS.exec(text);
  if (m?.[1]) return { ...splitKey(m[1]), op: "exists", values: [] };
  throw new Error(`invalid requirement ${JSON.stringify(text)}`);
}

/** Compile a selector; throws Error naming the bad requirement. */
export function compileLabelSelector(selector: string): LabelSelector {
  const requirements =
    selector.trim() === "" ? [] : splitTopLevel(selector).map((t) => parseRequirement(t));
  return (labels) =>
    requirements.every((r) => {
      const found = labels.filter(
        (l) => l.key === r.key && (r.source === undefined || l.source === r.source),
      );
      switch (r.op) {
        case "exists":
          return found.length > 0;
        case "notexists":
          return found.length === 0;
        case "eq":
        case "in":
          return found.some((l) => r.values.includes(l.value));
        case "neq":
        case "notin":
          return !found.some((l) => r.values.includes(l.value));
        case "gt":
        case "lt": {
          const bound = int64(r.values[0] ?? "") ?? 0n;
          return found.some((l) => {
            const v = int64(l.value);
            return v !== undefined && (r.op === "gt" ? v > bound : v < bound);
          });
        }
      }
      return false;
    });
}
