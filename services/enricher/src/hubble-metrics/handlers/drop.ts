import { DropReason, Verdict } from "@periscope/proto";
import { contextLabelNames, contextLabelValues } from "../context.ts";
import type { HandlerFactory } from "../handler.ts";
import { flowProtocol } from "../protocol.ts";
import { TableCounter } from "../table.ts";

/**
 * `hubble_drop_total{...context,reason,protocol}`: dropped flows by Hubble drop reason
 * name (`POLICY_DENIED`; kernel drops by the closest Hubble reason, e.g. `NO_SOCKET`).
 */
export const dropHandler: HandlerFactory = ({ registry, limit, journal, context }) => {
  const drops = new TableCounter({
    name: "hubble_drop_total",
    help: "Number of drops",
    labelNames: [...contextLabelNames(context), "reason", "protocol"],
    registry,
    limit,
    journal,
  });
  const values: string[] = [];
  return {
    process(flow) {
      if (flow.verdict !== Verdict.DROPPED) return;
      values.length = 0;
      contextLabelValues(context, flow, values);
      values.push(
        DropReason[flow.dropReasonDesc] ?? String(flow.dropReasonDesc),
        flowProtocol(flow),
      );
      drops.add(values);
    },
  };
};
