import { Verdict } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";

/**
 * reply: is_reply equals one listed value. Unknown is_reply never matches,
 * except on DROPPED flows where it counts as false, as Hubble does (older
 * clients filter on the deprecated `reply` field, false for every drop).
 */
export const replyFilter: FilterBuilder = {
  fields: ["reply"],
  build(ff) {
    if (ff.reply.length === 0) return [];
    const wanted = new Set(ff.reply);
    return [
      (flow) => {
        if (flow.isReply !== undefined) return wanted.has(flow.isReply);
        return flow.verdict === Verdict.DROPPED && wanted.has(false);
      },
    ];
  },
};
