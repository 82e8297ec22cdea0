import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";

/** source_identity, destination_identity: numeric security identities. */
export const identityFilter: FilterBuilder = {
  fields: ["source_identity", "destination_identity"],
  build(ff) {
    const out: FlowPredicate[] = [];
    if (ff.sourceIdentity.length > 0) {
      const ids = new Set(ff.sourceIdentity);
      out.push((flow) => ids.has(flow.source?.identity ?? 0));
    }
    if (ff.destinationIdentity.length > 0) {
      const ids = new Set(ff.destinationIdentity);
      out.push((flow) => ids.has(flow.destination?.identity ?? 0));
    }
    return out;
  },
};
