import type { TCPFlags } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";

const FLAG_NAMES = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"] as const;

/**
 * tcp_flags: a TCP flow matches a listed TCPFlags when every flag set in the
 * filter is also set on the flow (other flow flags may be set too).
 */
export const tcpFlagsFilter: FilterBuilder = {
  fields: ["tcp_flags"],
  build(ff) {
    if (ff.tcpFlags.length === 0) return [];
    const wanted = ff.tcpFlags.map((f: TCPFlags) => FLAG_NAMES.filter((n) => f[n]));
    return [
      (flow) => {
        const p = flow.l4?.protocol;
        if (p?.case !== "TCP" || !p.value.flags) return false;
        const flags = p.value.flags;
        return wanted.some((names) => names.every((n) => flags[n]));
      },
    ];
  },
};
