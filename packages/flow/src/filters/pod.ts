import type { Endpoint, Flow } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";

/**
 * Hubble's "[namespace/][pod-prefix]" match: "demo/" matches every pod in
 * namespace demo, "demo/front" pods in demo whose name starts with "front",
 * and "front" (no slash) pods without a namespace whose name starts with
 * "front". An endpoint with neither namespace nor pod name never matches.
 */
export function filterByPodNames(
  field: string,
  values: readonly string[],
  getEndpoint: (flow: Flow) => Endpoint | undefined,
): FlowPredicate {
  const patterns = values.map((value) => {
    const [first = "", second, ...rest] = value.split("/");
    if (rest.length > 0) {
      throw new FilterError(field, `must be [namespace/][<name>], got ${JSON.stringify(value)}`);
    }
    const parsed = second === undefined ? { ns: "", prefix: first } : { ns: first, prefix: second };
    if (parsed.ns === "" && parsed.prefix === "") {
      throw new FilterError(field, `must be [namespace/][<name>], got ${JSON.stringify(value)}`);
    }
    return parsed;
  });
  return (flow) => {
    const ep = getEndpoint(flow);
    const ns = ep?.namespace ?? "";
    const pod = ep?.podName ?? "";
    if (ns === "" && pod === "") return false;
    return patterns.some((p) => p.ns === ns && pod.startsWith(p.prefix));
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
