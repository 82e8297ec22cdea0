import type { FilterBuilder } from "./builder.ts";
import { FilterError } from "./errors.ts";
import { compileLabelSelector, type LabelSelector, parseLabel } from "./label-selector.ts";

/**
 * node_labels: label selectors ("topology.kubernetes.io/zone=a",
 * "role in (edge, gw)") over the labels of the node that observed the flow;
 * any selector selecting them matches.
 */
export const nodeLabelsFilter: FilterBuilder = {
  fields: ["node_labels"],
  build(ff) {
    if (ff.nodeLabels.length === 0) return [];
    const selectors: LabelSelector[] = ff.nodeLabels.map((s) => {
      try {
        return compileLabelSelector(s);
      } catch (err) {
        throw new FilterError("node_labels", (err as Error).message, { cause: err });
      }
    });
    return [
      (flow) => {
        const labels = flow.nodeLabels.map(parseLabel);
        return selectors.some((sel) => sel(labels));
      },
    ];
  },
};
