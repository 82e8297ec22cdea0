import { DropReasonSchema, Verdict } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import { FilterError } from "./errors.ts";

const KNOWN = new Set(DropReasonSchema.values.map((v) => v.number));

/**
 * drop_reason_desc: a dropped flow whose drop reason is one of the listed
 * DropReason values (as in Hubble, flows with another verdict never match);
 * a number the enum does not define is rejected.
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
    return [(flow) => flow.verdict === Verdict.DROPPED && reasons.has(flow.dropReasonDesc)];
  },
};
