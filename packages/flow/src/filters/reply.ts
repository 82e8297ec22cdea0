import type { FilterBuilder } from "./builder.ts";

/** reply: is_reply is known and equals one listed value (unknown never matches). */
export const replyFilter: FilterBuilder = {
  fields: ["reply"],
  build(ff) {
    if (ff.reply.length === 0) return [];
    const wanted = new Set(ff.reply);
    return [(flow) => flow.isReply !== undefined && wanted.has(flow.isReply)];
  },
};
