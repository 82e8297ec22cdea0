import type { Endpoint, Flow } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";

/**
 * Matches when the endpoint's cluster name is one of the names, exactly. As in
 * Hubble only an empty name is rejected, so clusters named before Cilium's
 * stricter naming rule can still be selected.
 */
export function filterByClusterNames(
  field: string,
  names: readonly string[],
  getEndpoint: (flow: Flow) => Endpoint | undefined,
): FlowPredicate {
  for (const name of names) {
    if (name === "") throw new FilterError(field, "cluster name must not be empty");
  }
  const wanted = new Set(names);
  return (flow) => wanted.has(getEndpoint(flow)?.clusterName ?? "");
}

/** source_cluster_name, destination_cluster_name. */
export const clusterNameFilter: FilterBuilder = {
  fields: ["source_cluster_name", "destination_cluster_name"],
  build(ff) {
    const out: FlowPredicate[] = [];
    if (ff.sourceClusterName.length > 0) {
      out.push(filterByClusterNames("source_cluster_name", ff.sourceClusterName, (f) => f.source));
    }
    if (ff.destinationClusterName.length > 0) {
      out.push(
        filterByClusterNames(
          "destination_cluster_name",
          ff.destinationClusterName,
          (f) => f.destination,
        ),
      );
    }
    return out;
  },
};
