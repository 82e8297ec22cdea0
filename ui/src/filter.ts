/**
 * The filter box: `key=value` terms with the names of `periscope observe`'s flags, built
 * into whitelist FlowFilters the way observe does (a bidirectional term such as `pod=` or
 * `port=` matches either side: one filter with the source form, one with the destination
 * form; `from-`/`to-` pick one side). Terms of different keys must all match; repeating a
 * key widens it (either value).
 */
import { create } from "@bufbuild/protobuf";
import {
  type FlowFilter,
  FlowFilterSchema,
  Verdict,
} from "@periscope/proto/src/gen/flow/flow_pb.ts";

import { FILTER_KEYS } from "./filter-keys.ts";

export { FILTER_KEYS };

/** A term the box could not read. */
export class FilterError extends Error {}

type Side = "src" | "dst";
type Apply = (f: FlowFilter, v: string, side: Side) => void;

const VERDICT_NAMES: Record<string, Verdict> = {
  forwarded: Verdict.FORWARDED,
  dropped: Verdict.DROPPED,
  error: Verdict.ERROR,
  audit: Verdict.AUDIT,
  redirected: Verdict.REDIRECTED,
  traced: Verdict.TRACED,
  translated: Verdict.TRANSLATED,
};

/** Pod value `ns/name`, `name` (namespace from `namespace=` or "default" like observe). */
function podValue(v: string, ns: string | undefined): string {
  return v.includes("/") ? v : `${ns ?? "default"}/${v}`;
}

const sided =
  (src: keyof FlowFilter, dst: keyof FlowFilter): Apply =>
  (f, v, side) => {
    (f[side === "src" ? src : dst] as string[]).push(v);
  };

/** Bidirectional keys: base name → per-side field update. */
const BIDI: Record<string, Apply> = {
  pod: sided("sourcePod", "destinationPod"),
  label: sided("sourceLabel", "destinationLabel"),
  ip: sided("sourceIp", "destinationIp"),
  port: (f, v, side) => {
    if (!/^\d{1,5}$/.test(v) || Number(v) > 65535)
      throw new FilterError(`port: "${v}" is not a port number`);
    (side === "src" ? f.sourcePort : f.destinationPort).push(v);
  },
  namespace: sided("sourcePod", "destinationPod"),
};

/** Keys applying to the whole flow. */
const BOTH: Record<string, (f: FlowFilter, v: string) => void> = {
  verdict: (f, v) => {
    const x = VERDICT_NAMES[v.toLowerCase()];
    if (x === undefined)
      throw new FilterError(
        `verdict: "${v}" is not one of ${Object.keys(VERDICT_NAMES).join(", ")}`,
      );
    f.verdict.push(x);
  },
  protocol: (f, v) => {
    f.protocol.push(v.toLowerCase());
  },
  type: (f, v) => {
    const t = v.toLowerCase();
    const types: Record<string, number> = { l7: 129, drop: 1, trace: 4, "policy-verdict": 5 };
    const n = types[t];
    if (n === undefined)
      throw new FilterError(`type: "${v}" is not one of ${Object.keys(types).join(", ")}`);
    f.eventType.push({
      $typeName: "flow.EventTypeFilter",
      type: n,
      matchSubType: false,
      subType: 0,
    });
  },
  "http-status": (f, v) => {
    if (!/^\d{1,3}\+?$/.test(v))
      throw new FilterError(`http-status: "${v}" is not a status (e.g. 500 or 5+)`);
    f.httpStatusCode.push(v);
  },
  "http-method": (f, v) => {
    f.httpMethod.push(v.toUpperCase());
  },
  "http-path": (f, v) => {
    f.httpPath.push(v);
  },
  "dns-query": (f, v) => {
    f.dnsQuery.push(v);
  },
  "node-name": (f, v) => {
    f.nodeName.push(v);
  },
};

/** One parsed term. */
export interface FilterTerm {
  readonly key: string;
  readonly value: string;
}

/** Splits the box's text into terms; throws FilterError naming a bad one. */
export function parseTerms(text: string): FilterTerm[] {
  const terms: FilterTerm[] = [];
  for (const tok of text.trim().split(/\s+/)) {
    if (tok === "") continue;
    const eq = tok.indexOf("=");
    if (eq <= 0)
      throw new FilterError(`"${tok}": expected key=value (keys: ${FILTER_KEYS.join(", ")})`);
    const key = tok.slice(0, eq).toLowerCase().replace(/^--/, "");
    const value = tok.slice(eq + 1);
    if (!(FILTER_KEYS as readonly string[]).includes(key)) {
      throw new FilterError(`"${key}" is not a filter (keys: ${FILTER_KEYS.join(", ")})`);
    }
    if (value === "") throw new FilterError(`"${key}" needs a value`);
    terms.push({ key, value });
  }
  return terms;
}

/** Builds the whitelist for the box's text ([] = everything). Throws FilterError. */
export function buildWhitelist(text: string): FlowFilter[] {
  const terms = parseTerms(text);
  if (terms.length === 0) return [];
  const ns = terms.find((t) => t.key === "namespace")?.value;
  const left = create(FlowFilterSchema);
  const right = create(FlowFilterSchema);
  let bidi = false;
  for (const { key, value } of terms) {
    const both = BOTH[key];
    if (both) {
      both(left, value);
      both(right, value);
      continue;
    }
    const m = /^(from-|to-)?(.*)$/.exec(key) as RegExpExecArray;
    const base = m[2] as string;
    const apply = BIDI[base] as Apply;
    let v = value;
    if (base === "pod") v = podValue(value, ns);
    if (base === "namespace") {
      // A namespace alone matches either side; with pod= it only names the pods' namespace.
      if (terms.some((t) => t.key.endsWith("pod"))) continue;
      v = `${value}/`;
    }
    if (m[1] === "from-") {
      apply(left, v, "src");
      apply(right, v, "src");
    } else if (m[1] === "to-") {
      apply(left, v, "dst");
      apply(right, v, "dst");
    } else {
      bidi = true;
      apply(left, v, "src");
      apply(right, v, "dst");
    }
  }
  return bidi ? [left, right] : [left];
}
