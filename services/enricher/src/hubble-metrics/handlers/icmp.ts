import { icmpV4TypeCodeText, icmpV6TypeCodeText } from "@periscope/flow";
import { contextLabelNames, contextLabelValues } from "../context.ts";
import type { HandlerFactory } from "../handler.ts";
import { TableCounter } from "../table.ts";

/**
 * `hubble_icmp_total{family,type,...context}`: ICMP messages by family (`IPv4`/`IPv6`) and
 * type as gopacket prints it (`EchoRequest`, `DestinationUnreachable(Port)`).
 */
export const icmpHandler: HandlerFactory = ({ registry, limit, journal, context }) => {
  const icmp = new TableCounter({
    name: "hubble_icmp_total",
    help: "Number of ICMP messages",
    labelNames: ["family", "type", ...contextLabelNames(context)],
    registry,
    limit,
    journal,
  });
  const values: string[] = [];
  // Type/code text per family, built once: (type << 8 | code) → text.
  const v4 = new Map<number, string>();
  const v6 = new Map<number, string>();
  const text = (
    cache: Map<number, string>,
    name: (t: number, c: number) => string,
    type: number,
    code: number,
  ): string => {
    const k = ((type & 0xff) << 8) | (code & 0xff);
    let t = cache.get(k);
    if (t === undefined) {
      t = name(type, code);
      cache.set(k, t);
    }
    return t;
  };
  return {
    process(flow) {
      const l4 = flow.l4?.protocol;
      if (l4?.case !== "ICMPv4" && l4?.case !== "ICMPv6") return;
      values.length = 0;
      if (l4.case === "ICMPv4")
        values.push("IPv4", text(v4, icmpV4TypeCodeText, l4.value.type, l4.value.code));
      else values.push("IPv6", text(v6, icmpV6TypeCodeText, l4.value.type, l4.value.code));
      contextLabelValues(context, flow, values);
      icmp.add(values);
    },
  };
};
