import type { Endpoint, Flow } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";

/** Cilium's cluster-name rule: lower-case alphanumerics and '-', at most 32 characters. */
const CLUSTER_NAME = /^(?:[a-z0-9](?:[-a-z0-9]{0,30}[a-z0-9])?)$/;

/** Matches when the endpoint's cluster name is one of the names, exactly. */
export function filterByClusterNames(
  field: string,
  names: readonly string[],
  getEndpoint: (flow: Flow) => Endpoint | undefined,
): FlowPredicate {
  for (const name of names) {
    if (!CLUSTER_NAME.test(name)) {
      throw new FilterError(field, `invalid cluster name ${JSON.stringify(name)}`);
    }
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
