import type { Endpoint, Flow, Workload } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";

/**
 * Matches when one of the endpoint's workloads matches one of the filter
 * workloads: kind and name compared exactly, an empty one matching any.
 * A workload with neither is rejected (it would only test that a workload
 * is known, which nobody means).
 */
export function filterByWorkloads(
  field: string,
  wanted: readonly Workload[],
  getEndpoint: (flow: Flow) => Endpoint | undefined,
): FlowPredicate {
  for (const w of wanted) {
    if (w.name === "" && w.kind === "") {
      throw new FilterError(field, "a workload needs a name or a kind");
    }
  }
  return (flow) =>
    (getEndpoint(flow)?.workloads ?? []).some((have) =>
      wanted.some(
        (w) => (w.kind === "" || w.kind === have.kind) && (w.name === "" || w.name === have.name),
      ),
    );
}

/** source_workload, destination_workload. */
export const workloadFilter: FilterBuilder = {
  fields: ["source_workload", "destination_workload"],
  build(ff) {
    const out: FlowPredicate[] = [];
    if (ff.sourceWorkload.length > 0) {
      out.push(filterByWorkloads("source_workload", ff.sourceWorkload, (f) => f.source));
    }
    if (ff.destinationWorkload.length > 0) {
      out.push(
        filterByWorkloads("destination_workload", ff.destinationWorkload, (f) => f.destination),
      );
    }
    return out;
  },
};
