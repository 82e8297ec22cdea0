import type { FilterBuilder } from "./builder.ts";

/**
 * event_type: the flow's Cilium event type equals one listed type (type 0 is
 * a wildcard for any type, as in Hubble), and its sub-type too when the
 * filter sets match_sub_type. A flow without an event type never matches.
 */
export const eventTypeFilter: FilterBuilder = {
  fields: ["event_type"],
  build(ff) {
    if (ff.eventType.length === 0) return [];
    const wanted = ff.eventType.map((e) => ({ ...e }));
    return [
      (flow) => {
        const et = flow.eventType;
        if (!et) return false;
        return wanted.some(
          (w) =>
            (w.type === 0 || w.type === et.type) && (!w.matchSubType || w.subType === et.subType),
        );
      },
    ];
  },
};
