import type { FilterBuilder } from "./builder.ts";
import { filterByIps } from "./ip.ts";

/** source_ip_xlated: IPs / CIDRs matched against the translated (SNAT) source IP. */
export const ipXlatedFilter: FilterBuilder = {
  fields: ["source_ip_xlated"],
  build(ff) {
    if (ff.sourceIpXlated.length === 0) return [];
    return [filterByIps("source_ip_xlated", ff.sourceIpXlated, (f) => f.IP?.sourceXlated)];
  },
};
