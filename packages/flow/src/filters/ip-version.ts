import { IPVersion } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";

/** ip_version: the flow's IP version is listed (IP_NOT_USED for non-IP flows). */
export const ipVersionFilter: FilterBuilder = {
  fields: ["ip_version"],
  build(ff) {
    if (ff.ipVersion.length === 0) return [];
    const versions = new Set(ff.ipVersion);
    return [(flow) => versions.has(flow.IP?.ipVersion ?? IPVersion.IP_NOT_USED)];
  },
};
