import type { FilterBuilder } from "./builder.ts";

/** traffic_direction: the flow's direction is one of the listed ones. */
export const trafficDirectionFilter: FilterBuilder = {
  fields: ["traffic_direction"],
  build(ff) {
    if (ff.trafficDirection.length === 0) return [];
    const directions = new Set(ff.trafficDirection);
    return [(flow) => directions.has(flow.trafficDirection)];
  },
};
