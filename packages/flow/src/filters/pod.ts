import type { Endpoint, Flow } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";

/** One parsed "[namespace/][pod-prefix]" value; an empty `ns` matches any namespace. */
export interface PodPattern {
  readonly ns: string;
  readonly prefix: string;
}

/**
 * Parses Hubble's "[namespace/][pod-prefix]" pod filter value:
 * "demo/front" pods in demo whose name starts with "front", "demo/" every pod
 * in demo, "front" (no slash) namespace "default", "/front" the prefix in any
 * namespace and "/" (what `hubble observe --all-namespaces` sends) any pod in
 * any namespace.
 * @throws FilterError naming `field` for "" and values with two slashes.
 */
export function parsePodPattern(field: string, value: string): PodPattern {
  const parts = value.split("/");
  if (value === "" || parts.length > 2) {
    throw new FilterError(field, `must be [namespace/][<name>], got ${JSON.stringify(value)}`);
  }
  const [first = "", second] = parts;
  return second === undefined ? { ns: "default", prefix: first } : { ns: first, prefix: second };
}

/**
 * Matches endpoints against pod filter values (see {@link parsePodPattern}).
 * An endpoint with neither namespace nor pod name never matches.
 */
export function filterByPodNames(
  field: string,
  values: readonly string[],
  getEndpoint: (flow: Flow) => Endpoint | undefined,
): FlowPredicate {
  const patterns = values.map((value) => parsePodPattern(field, value));
  return (flow) => {
    const ep = getEndpoint(flow);
    const ns = ep?.namespace ?? "";
    const pod = ep?.podName ?? "";
    if (ns === "" && pod === "") return false;
    return patterns.some((p) => (p.ns === "" || p.ns === ns) && pod.startsWith(p.prefix));
  };
}

/** source_pod, destination_pod. */
export const podFilter: FilterBuilder = {
  fields: ["source_pod", "destination_pod"],
  build(ff) {
    const out: FlowPredicate[] = [];
    if (ff.sourcePod.length > 0) {
      out.push(filterByPodNames("source_pod", ff.sourcePod, (f) => f.source));
    }
    if (ff.destinationPod.length > 0) {
      out.push(filterByPodNames("destination_pod", ff.destinationPod, (f) => f.destination));
    }
    return out;
  },
};
