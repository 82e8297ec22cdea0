import { Verdict } from "@periscope/proto";
import { contextLabelNames, contextLabelValues } from "../context.ts";
import type { HandlerFactory } from "../handler.ts";
import { ipFamily } from "../protocol.ts";
import { TableCounter } from "../table.ts";

/**
 * `hubble_tcp_flags_total{flag,family,...context}`: FIN, SYN, SYN-ACK and RST seen on
 * forwarded or redirected TCP flows (one packet can count under several flags).
 */
export const tcpHandler: HandlerFactory = ({ registry, limit, journal, context }) => {
  const flags = new TableCounter({
    name: "hubble_tcp_flags_total",
    help: "TCP flag occurrences",
    labelNames: ["flag", "family", ...contextLabelNames(context)],
    registry,
    limit,
    journal,
  });
  const values: string[] = [];
  return {
    process(flow) {
      if (flow.verdict !== Verdict.FORWARDED && flow.verdict !== Verdict.REDIRECTED) return;
      const l4 = flow.l4?.protocol;
      if (flow.IP === undefined || l4?.case !== "TCP") return;
      const f = l4.value.flags;
      if (f === undefined || !(f.FIN || f.SYN || f.RST)) return;
      values.length = 0;
      values.push("", ipFamily(flow));
      contextLabelValues(context, flow, values);
      const count = (flag: string): void => {
        values[0] = flag;
        flags.add(values);
      };
      if (f.FIN) count("FIN");
      if (f.SYN) count(f.ACK ? "SYN-ACK" : "SYN");
      if (f.RST) count("RST");
    },
  };
};
