import type { Flow } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";
import {
  type Cidr,
  cidrContains,
  type IpBytes,
  ipEqual,
  parseCidr,
  parseIpAddress,
} from "./ip-address.ts";

/**
 * Matches when the address is one of the exact IPs or inside one of the
 * CIDRs ("10.0.0.1", "10.0.0.0/8", "fd00::/64"). Addresses are compared
 * parsed, so "fd00:0::1" equals "fd00::1".
 */
export function filterByIps(
  field: string,
  values: readonly string[],
  getIp: (flow: Flow) => string | undefined,
): FlowPredicate {
  const exact: IpBytes[] = [];
  const cidrs: Cidr[] = [];
  for (const value of values) {
    if (value.includes("/")) {
      const cidr = parseCidr(value);
      if (!cidr) throw new FilterError(field, `invalid CIDR ${JSON.stringify(value)}`);
      cidrs.push(cidr);
    } else {
      const ip = parseIpAddress(value);
      if (!ip) throw new FilterError(field, `invalid IP address ${JSON.stringify(value)}`);
      exact.push(ip);
    }
  }
  return (flow) => {
    const text = getIp(flow);
    if (!text) return false;
    const ip = parseIpAddress(text);
    if (!ip) return false;
    return exact.some((e) => ipEqual(e, ip)) || cidrs.some((c) => cidrContains(c, ip));
  };
}

/** source_ip, destination_ip. */
export const ipFilter: FilterBuilder = {
  fields: ["source_ip", "destination_ip"],
  build(ff) {
    const out: FlowPredicate[] = [];
    if (ff.sourceIp.length > 0) {
      out.push(filterByIps("source_ip", ff.sourceIp, (f) => f.IP?.source));
    }
    if (ff.destinationIp.length > 0) {
      out.push(filterByIps("destination_ip", ff.destinationIp, (f) => f.IP?.destination));
    }
    return out;
  },
};
