import type { FilterBuilder } from "./builder.ts";

/** encrypted: the flow has an IP layer whose `encrypted` equals a listed value. */
export const encryptedFilter: FilterBuilder = {
  fields: ["encrypted"],
  build(ff) {
    if (ff.encrypted.length === 0) return [];
    const wanted = new Set(ff.encrypted);
    return [(flow) => flow.IP !== undefined && wanted.has(flow.IP.encrypted)];
  },
};
