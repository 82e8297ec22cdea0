import type { Flow, Service } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";

/**
 * Matches the flow's service against "[namespace/][name-prefix]" values, the
 * grammar source_pod uses: "demo/api" services in demo named "api…", "demo/"
 * every service in demo, "api" (no slash) namespace "default", "/api" the
 * prefix in any namespace. A flow without a service never matches.
 * @throws FilterError naming `field` for "" and values with two slashes.
 */
export function filterByServices(
  field: string,
  values: readonly string[],
  getService: (flow: Flow) => Service | undefined,
): FlowPredicate {
  const patterns = values.map((value) => {
    const parts = value.split("/");
    if (value === "" || parts.length > 2) {
      throw new FilterError(field, `must be [namespace/][<name>], got ${JSON.stringify(value)}`);
    }
    const [first = "", second] = parts;
    return second === undefined ? { ns: "default", prefix: first } : { ns: first, prefix: second };
  });
  return (flow) => {
    const svc = getService(flow);
    const ns = svc?.namespace ?? "";
    const name = svc?.name ?? "";
    if (ns === "" && name === "") return false;
    return patterns.some((p) => (p.ns === "" || p.ns === ns) && name.startsWith(p.prefix));
  };
}

/** source_service, destination_service. */
export const serviceFilter: FilterBuilder = {
  fields: ["source_service", "destination_service"],
  build(ff) {
    const out: FlowPredicate[] = [];
    if (ff.sourceService.length > 0) {
      out.push(filterByServices("source_service", ff.sourceService, (f) => f.sourceService));
    }
    if (ff.destinationService.length > 0) {
      out.push(
        filterByServices("destination_service", ff.destinationService, (f) => f.destinationService),
      );
    }
    return out;
  },
};
