import { MESSAGE_TYPE, traceSubtypeName } from "@periscope/model";
import { type Flow, Verdict } from "@periscope/proto";
import { contextLabelNames, contextLabelValues } from "../context.ts";
import type { HandlerFactory } from "../handler.ts";
import { flowProtocol } from "../protocol.ts";
import { TableCounter } from "../table.ts";

/** Hubble's `type` and `subtype` labels of a flow. */
function typeAndSubtype(flow: Flow): [string, string] {
  const type = flow.eventType?.type ?? 0;
  switch (type) {
    case MESSAGE_TYPE.L7: {
      const c = flow.l7?.record.case;
      return ["L7", c === "dns" ? "DNS" : c === "http" ? "HTTP" : ""];
    }
    case MESSAGE_TYPE.DROP:
      return ["Drop", ""];
    case MESSAGE_TYPE.CAPTURE:
      return ["Capture", ""];
    case MESSAGE_TYPE.TRACE:
      return ["Trace", traceSubtypeName(flow.eventType?.subType ?? 0)];
    case MESSAGE_TYPE.POLICY_VERDICT:
      return ["PolicyVerdict", ""];
    default:
      return ["Unknown", String(type)];
  }
}

/** `hubble_flows_processed_total{protocol,type,subtype,verdict,...context}`: every flow. */
export const flowHandler: HandlerFactory = ({ registry, limit, journal, context }) => {
  const flows = new TableCounter({
    name: "hubble_flows_processed_total",
    help: "Total number of flows processed",
    labelNames: ["protocol", "type", "subtype", "verdict", ...contextLabelNames(context)],
    registry,
    limit,
    journal,
  });
  const values: string[] = [];
  return {
    process(flow) {
      const [type, subtype] = typeAndSubtype(flow);
      values.length = 0;
      values.push(flowProtocol(flow), type, subtype, Verdict[flow.verdict] ?? String(flow.verdict));
      contextLabelValues(context, flow, values);
      flows.add(values);
    },
  };
};
