import type { Endpoint, Flow } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";
import { compileLabelSelector, type LabelSelector, parseLabel } from "./label-selector.ts";

/** Matches when any of the selectors selects the endpoint's labels. */
export function filterByLabelSelectors(
  field: string,
  selectors: readonly string[],
  getEndpoint: (flow: Flow) => Endpoint | undefined,
): FlowPredicate {
  const compiled: LabelSelector[] = selectors.map((s) => {
    try {
      return compileLabelSelector(s);
    } catch (err) {
      throw new FilterError(field, (err as Error).message, { cause: err });
    }
  });
  return (flow) => {
    const labels = (getEndpoint(flow)?.labels ?? []).map(parseLabel);
    return compiled.some((sel) => sel(labels));
  };
}

/** source_label, destination_label. */
export const labelFilter: FilterBuilder = {
  fields: ["source_label", "destination_label"],
  build(ff) {
    const out: FlowPredicate[] = [];
    if (ff.sourceLabel.length > 0) {
      out.push(filterByLabelSelectors("source_label", ff.sourceLabel, (f) => f.source));
    }
    if (ff.destinationLabel.length > 0) {
      out.push(
        filterByLabelSelectors("destination_label", ff.destinationLabel, (f) => f.destination),
      );
    }
    return out;
  },
};
