import type { FilterBuilder } from "./builder.ts";
import { dnsOf } from "./l7.ts";
import { compileRegexps } from "./regex.ts";

/**
 * dns_query: RE2-style regular expressions searched in the DNS query name
 * ("example\\.com\\.$"). Only flows carrying a DNS record can match.
 */
export const dnsQueryFilter: FilterBuilder = {
  fields: ["dns_query"],
  build(ff) {
    if (ff.dnsQuery.length === 0) return [];
    const res = compileRegexps("dns_query", ff.dnsQuery);
    return [
      (flow) => {
        const dns = dnsOf(flow);
        return dns !== undefined && res.some((re) => re.test(dns.query));
      },
    ];
  },
};
