import type { FilterBuilder } from "./builder.ts";

/** verdict: the flow's verdict is one of the listed ones. */
export const verdictFilter: FilterBuilder = {
  fields: ["verdict"],
  build(ff) {
    if (ff.verdict.length === 0) return [];
    const verdicts = new Set(ff.verdict);
    return [(flow) => verdicts.has(flow.verdict)];
  },
};
