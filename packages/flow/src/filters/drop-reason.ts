import { DropReasonSchema } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import { FilterError } from "./errors.ts";

const KNOWN = new Set(DropReasonSchema.values.map((v) => v.number));

/**
 * drop_reason_desc: the flow's drop reason is one of the listed DropReason
 * values; a number the enum does not define is rejected.
 */
export const dropReasonFilter: FilterBuilder = {
  fields: ["drop_reason_desc"],
  build(ff) {
    if (ff.dropReasonDesc.length === 0) return [];
    for (const reason of ff.dropReasonDesc) {
      if (!KNOWN.has(reason)) {
        throw new FilterError("drop_reason_desc", `unknown drop reason ${reason}`);
      }
    }
    const reasons = new Set(ff.dropReasonDesc);
    return [(flow) => reasons.has(flow.dropReasonDesc)];
  },
};
