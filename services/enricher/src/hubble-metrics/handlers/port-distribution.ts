import { Verdict } from "@periscope/proto";
import { contextLabelNames, contextLabelValues } from "../context.ts";
import type { HandlerFactory } from "../handler.ts";
import { TableCounter } from "../table.ts";

/**
 * `hubble_port_distribution_total{protocol,port,...context}`: forwarded/redirected packets
 * by destination port (ICMP, VRRP, IGMP as port "0"); replies and flows not known to be
 * requests (no is_reply) are not counted, as in Hubble.
 */
export const portDistributionHandler: HandlerFactory = ({ registry, limit, journal, context }) => {
  const ports = new TableCounter({
    name: "hubble_port_distribution_total",
    help: "Numbers of packets distributed by destination port",
    labelNames: ["protocol", "port", ...contextLabelNames(context)],
    registry,
    limit,
    journal,
  });
  const values: string[] = [];
  /** Port numbers as text, made once each. */
  const portText: string[] = [];
  const port = (n: number): string => {
    let t = portText[n];
    if (t === undefined) {
      t = String(n);
      if (n >= 0 && n <= 0xffff) portText[n] = t;
    }
    return t;
  };
  return {
    process(flow) {
      if (flow.verdict !== Verdict.FORWARDED && flow.verdict !== Verdict.REDIRECTED) return;
      if (flow.isReply !== false) return;
      const l4 = flow.l4?.protocol;
      if (l4?.case === undefined) return;
      values.length = 0;
      switch (l4.case) {
        case "TCP":
        case "UDP":
        case "SCTP":
          values.push(l4.case, port(l4.value.destinationPort));
          break;
        default:
          values.push(l4.case, "0");
      }
      contextLabelValues(context, flow, values);
      ports.add(values);
    },
  };
};
