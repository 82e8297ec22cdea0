import type { FilterBuilder } from "./builder.ts";

/** uuid: the flow's UUID is one of the listed ones. */
export const uuidFilter: FilterBuilder = {
  fields: ["uuid"],
  build(ff) {
    if (ff.uuid.length === 0) return [];
    const ids = new Set(ff.uuid);
    return [(flow) => ids.has(flow.uuid)];
  },
};
