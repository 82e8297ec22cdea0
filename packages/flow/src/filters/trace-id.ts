import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";

/**
 * trace_id: the flow's trace_context.parent.trace_id equals one of the IDs;
 * ip_trace_id: the flow's IP-option trace ID (ip_trace_id.trace_id) equals
 * one of them. Empty / zero IDs mean "none" on a flow and are rejected.
 */
export const traceIdFilter: FilterBuilder = {
  fields: ["trace_id", "ip_trace_id"],
  build(ff) {
    const out: FlowPredicate[] = [];
    if (ff.traceId.length > 0) {
      if (ff.traceId.includes("")) throw new FilterError("trace_id", "trace ID must not be empty");
      const ids = new Set(ff.traceId);
      out.push((flow) => ids.has(flow.traceContext?.parent?.traceId ?? ""));
    }
    if (ff.ipTraceId.length > 0) {
      if (ff.ipTraceId.includes(0n)) {
        throw new FilterError("ip_trace_id", "trace ID must not be 0");
      }
      const ids = new Set(ff.ipTraceId);
      out.push((flow) => ids.has(flow.ipTraceId?.traceId ?? 0n));
    }
    return out;
  },
};
