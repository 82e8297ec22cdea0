import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";

type L4Case = "TCP" | "UDP" | "SCTP" | "ICMPv4" | "ICMPv6" | "VRRP" | "IGMP";
type L7Case = "dns" | "http" | "kafka";

const L4_NAMES: Readonly<Record<string, readonly L4Case[]>> = {
  tcp: ["TCP"],
  udp: ["UDP"],
  sctp: ["SCTP"],
  icmp: ["ICMPv4", "ICMPv6"],
  icmpv4: ["ICMPv4"],
  icmpv6: ["ICMPv6"],
  vrrp: ["VRRP"],
  igmp: ["IGMP"],
};

const L7_NAMES: Readonly<Record<string, L7Case>> = { dns: "dns", http: "http", kafka: "kafka" };

/**
 * protocol: L4 ("tcp", "udp", "sctp", "icmp" = either ICMP, "icmpv4",
 * "icmpv6", "vrrp", "igmp") or L7 ("dns", "http", "kafka") names, any case.
 * Unknown names fail.
 */
export const protocolFilter: FilterBuilder = {
  fields: ["protocol"],
  build(ff) {
    if (ff.protocol.length === 0) return [];
    const l4 = new Set<string>();
    const l7 = new Set<string>();
    for (const value of ff.protocol) {
      const name = value.toLowerCase();
      const l4Cases = L4_NAMES[name];
      const l7Case = L7_NAMES[name];
      if (l4Cases) for (const c of l4Cases) l4.add(c);
      else if (l7Case) l7.add(l7Case);
      else throw new FilterError("protocol", `unknown protocol ${JSON.stringify(value)}`);
    }
    const predicate: FlowPredicate = (flow) => {
      const l4Case = flow.l4?.protocol.case;
      if (l4Case !== undefined && l4.has(l4Case)) return true;
      const l7Case = flow.l7?.record.case;
      return l7Case !== undefined && l7.has(l7Case);
    };
    return [predicate];
  },
};
