import { ConfigError } from "@periscope/config";
import { type Endpoint, type Flow, TrafficDirection } from "@periscope/proto";
import { CONTEXT_LABELS } from "./spec.ts";

/** What a `sourceContext`/`destinationContext` identifier puts in the label, as in Hubble. */
export const CONTEXT_IDENTIFIERS = [
  "identity",
  "namespace",
  "pod",
  "pod-short",
  "pod-name",
  "dns",
  "ip",
  "reserved-identity",
  "workload",
  "workload-name",
  "app",
] as const;

type ContextIdentifier = (typeof CONTEXT_IDENTIFIERS)[number];
type ContextLabel = (typeof CONTEXT_LABELS)[number];

/** A handler's parsed context options: which `source`/`destination`/context labels it adds. */
export interface ContextOptions {
  readonly source?: readonly ContextIdentifier[];
  readonly sourceEgress?: readonly ContextIdentifier[];
  readonly sourceIngress?: readonly ContextIdentifier[];
  readonly destination?: readonly ContextIdentifier[];
  readonly destinationEgress?: readonly ContextIdentifier[];
  readonly destinationIngress?: readonly ContextIdentifier[];
  /** `labelsContext` labels, in {@link CONTEXT_LABELS} order. */
  readonly labels: readonly ContextLabel[];
}

const OPTION_FIELDS = {
  sourcecontext: "source",
  sourceegresscontext: "sourceEgress",
  sourceingresscontext: "sourceIngress",
  destinationcontext: "destination",
  destinationegresscontext: "destinationEgress",
  destinationingresscontext: "destinationIngress",
} as const;

/**
 * Reads the context options of `handler` (keys lower-cased). Throws ConfigError (for
 * `field`) naming an unknown identifier or label.
 */
export function parseContextOptions(
  field: string,
  handler: string,
  options: ReadonlyMap<string, string>,
): ContextOptions {
  const out: { -readonly [K in keyof ContextOptions]: ContextOptions[K] } = { labels: [] };
  for (const [key, prop] of Object.entries(OPTION_FIELDS)) {
    const value = options.get(key);
    if (value === undefined) continue;
    out[prop] = value.split("|").map((id) => {
      const lower = id.toLowerCase();
      if (!(CONTEXT_IDENTIFIERS as readonly string[]).includes(lower)) {
        throw new ConfigError(
          field,
          `metric handler "${handler}": unknown context "${id}" (known: ${CONTEXT_IDENTIFIERS.join(", ")})`,
        );
      }
      return lower as ContextIdentifier;
    });
  }
  const labels = options.get("labelscontext");
  if (labels !== undefined) {
    const wanted = new Set(labels.split(","));
    for (const l of wanted) {
      if (!(CONTEXT_LABELS as readonly string[]).includes(l)) {
        throw new ConfigError(
          field,
          `metric handler "${handler}": invalid labelsContext value "${l}" (known: ${CONTEXT_LABELS.join(", ")})`,
        );
      }
    }
    out.labels = CONTEXT_LABELS.filter((l) => wanted.has(l));
  }
  return out;
}

const hasSource = (o: ContextOptions): boolean =>
  o.source !== undefined || o.sourceEgress !== undefined || o.sourceIngress !== undefined;
const hasDestination = (o: ContextOptions): boolean =>
  o.destination !== undefined ||
  o.destinationEgress !== undefined ||
  o.destinationIngress !== undefined;

/** Label names the context options add, in the order {@link contextLabelValues} fills them. */
export function contextLabelNames(o: ContextOptions): string[] {
  const names: string[] = [...o.labels];
  if (hasSource(o)) names.push("source");
  if (hasDestination(o)) names.push("destination");
  return names;
}

const APP_LABEL_KEYS = ["app.kubernetes.io/name", "k8s-app", "app"];
const SHORT_POD = /^(.+?)(-[a-z0-9]+){1,2}$/;

/** The endpoint's app label value (`app.kubernetes.io/name`, `k8s-app` or `app`, `k8s:` source optional). */
function appOf(ep: Endpoint | undefined): string {
  for (const key of APP_LABEL_KEYS) {
    for (const label of ep?.labels ?? []) {
      const plain = label.startsWith("k8s:") ? label.slice(4) : label;
      if (plain.startsWith(`${key}=`) && plain.length > key.length + 1) {
        return plain.slice(key.length + 1);
      }
    }
  }
  return "";
}

function reservedOf(ep: Endpoint | undefined): string {
  const labels = ep?.labels ?? [];
  if (labels.includes("reserved:kube-apiserver")) return "reserved:kube-apiserver";
  return labels.find((l) => l.startsWith("reserved:")) ?? "";
}

const withNamespace = (ep: Endpoint | undefined, name: string): string =>
  ep?.namespace ? `${ep.namespace}/${name}` : name;

/** The value of an identifier that depends on the endpoint alone. */
function endpointValue(id: ContextIdentifier, ep: Endpoint): string {
  switch (id) {
    case "namespace":
      return ep.namespace;
    case "identity":
      return ep.labels.join(",");
    case "pod":
      return withNamespace(ep, ep.podName);
    case "pod-short":
      return withNamespace(ep, ep.podName.replace(SHORT_POD, "$1"));
    case "pod-name":
      return ep.podName;
    case "reserved-identity":
      return reservedOf(ep);
    case "workload": {
      const w = ep.workloads[0]?.name;
      return w ? withNamespace(ep, w) : "";
    }
    case "workload-name":
      return ep.workloads[0]?.name ?? "";
    case "app":
      return appOf(ep);
    default:
      return "";
  }
}

/**
 * Endpoint-derived values per identifier, per Endpoint message: the decoder hands out one
 * Endpoint object per endpoint for a run of flows, so the label string is built once and
 * the same string (hash cached) is looked up again.
 */
const endpointValues = new Map<ContextIdentifier, WeakMap<Endpoint, string>>(
  CONTEXT_IDENTIFIERS.map((id) => [id, new WeakMap()]),
);

function identifierValue(id: ContextIdentifier, flow: Flow, source: boolean): string {
  if (id === "dns") return (source ? flow.sourceNames : flow.destinationNames).join(",");
  if (id === "ip") return (source ? flow.IP?.source : flow.IP?.destination) ?? "";
  const ep = source ? flow.source : flow.destination;
  if (ep === undefined) return "";
  const cache = endpointValues.get(id);
  let v = cache?.get(ep);
  if (v === undefined) {
    v = endpointValue(id, ep);
    cache?.set(ep, v);
  }
  return v;
}

function firstNonEmpty(ids: readonly ContextIdentifier[], flow: Flow, source: boolean): string {
  for (const id of ids) {
    const v = identifierValue(id, flow, source);
    if (v !== "") return v;
  }
  return "";
}

function labelValue(label: ContextLabel, flow: Flow, invert: boolean): string {
  const src = invert ? flow.destination : flow.source;
  const dst = invert ? flow.source : flow.destination;
  switch (label) {
    case "source_ip":
      return (invert ? flow.IP?.destination : flow.IP?.source) ?? "";
    case "source_pod":
      return src?.podName ?? "";
    case "source_namespace":
      return src?.namespace ?? "";
    case "source_workload":
      return src?.workloads[0]?.name ?? "";
    case "source_app":
      return appOf(src);
    case "destination_ip":
      return (invert ? flow.IP?.source : flow.IP?.destination) ?? "";
    case "destination_pod":
      return dst?.podName ?? "";
    case "destination_namespace":
      return dst?.namespace ?? "";
    case "destination_workload":
      return dst?.workloads[0]?.name ?? "";
    case "destination_app":
      return appOf(dst);
    case "traffic_direction":
      return flow.trafficDirection === TrafficDirection.INGRESS
        ? "ingress"
        : flow.trafficDirection === TrafficDirection.EGRESS
          ? "egress"
          : "unknown";
  }
}

/** The last flow's context values, reused by the next handler with the same options. */
let memoOptions: ContextOptions | undefined;
let memoFlow: Flow | undefined;
let memoInvert = false;
const memoValues: string[] = [];

/**
 * Appends the context label values of `flow` to `out`, in {@link contextLabelNames} order.
 * Per side, the direction-specific identifiers win when the flow has that direction; the
 * first identifier giving a non-empty value is used. `invert` reads the source labels from
 * the flow's destination and the other way round (response flows counted as their request,
 * as Hubble's httpV2 does). Handlers sharing one ContextOptions object share the work for a
 * flow (the values of the last call are kept).
 */
export function contextLabelValues(
  o: ContextOptions,
  flow: Flow,
  out: string[],
  invert = false,
): void {
  if (o.labels.length === 0 && !hasSource(o) && !hasDestination(o)) return;
  if (memoOptions !== o || memoFlow !== flow || memoInvert !== invert) {
    memoValues.length = 0;
    computeContextValues(o, flow, memoValues, invert);
    memoOptions = o;
    memoFlow = flow;
    memoInvert = invert;
  }
  for (const v of memoValues) out.push(v);
}

function computeContextValues(o: ContextOptions, flow: Flow, out: string[], invert: boolean): void {
  for (const label of o.labels) out.push(labelValue(label, flow, invert));
  const dir = flow.trafficDirection;
  const ingress = dir === TrafficDirection.INGRESS;
  const egress = dir === TrafficDirection.EGRESS;
  let src = "";
  let dst = "";
  if (hasSource(o)) {
    const ids = (ingress ? o.sourceIngress : egress ? o.sourceEgress : undefined) ?? o.source ?? [];
    src = firstNonEmpty(ids, flow, !invert);
  }
  if (hasDestination(o)) {
    const ids =
      (ingress ? o.destinationIngress : egress ? o.destinationEgress : undefined) ??
      o.destination ??
      [];
    dst = firstNonEmpty(ids, flow, invert);
  }
  if (hasSource(o)) out.push(src);
  if (hasDestination(o)) out.push(dst);
}
