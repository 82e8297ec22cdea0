import { isFieldSet } from "@bufbuild/protobuf";
import { type Flow, type FlowFilter, FlowFilterSchema } from "@periscope/proto";
import type { FilterBuilder } from "./builder.ts";
import { clusterNameFilter } from "./cluster-name.ts";
import { type FlowPredicate, matchAll, matchNone, matchOne } from "./combinators.ts";
import { dnsQueryFilter } from "./dns.ts";
import { dropReasonFilter } from "./drop-reason.ts";
import { encryptedFilter } from "./encrypted.ts";
import { FilterError } from "./errors.ts";
import { eventTypeFilter } from "./event-type.ts";
import { experimentalFilter } from "./experimental.ts";
import { fqdnFilter } from "./fqdn.ts";
import { httpFilter } from "./http.ts";
import { identityFilter } from "./identity.ts";
import { interfaceFilter } from "./interface.ts";
import { ipFilter } from "./ip.ts";
import { ipVersionFilter } from "./ip-version.ts";
import { ipXlatedFilter } from "./ip-xlated.ts";
import { labelFilter } from "./labels.ts";
import { nodeLabelsFilter } from "./node-labels.ts";
import { nodeNameFilter } from "./node-name.ts";
import { podFilter } from "./pod.ts";
import { portFilter } from "./port.ts";
import { protocolFilter } from "./protocol.ts";
import { replyFilter } from "./reply.ts";
import { serviceFilter } from "./service.ts";
import { tcpFlagsFilter } from "./tcp-flags.ts";
import { traceIdFilter } from "./trace-id.ts";
import { trafficDirectionFilter } from "./traffic-direction.ts";
import { uuidFilter } from "./uuid.ts";
import { verdictFilter } from "./verdict.ts";
import { workloadFilter } from "./workload.ts";

/** Every criterion this package compiles. */
export const FILTER_BUILDERS: readonly FilterBuilder[] = [
  uuidFilter,
  ipFilter,
  podFilter,
  labelFilter,
  fqdnFilter,
  identityFilter,
  protocolFilter,
  portFilter,
  verdictFilter,
  eventTypeFilter,
  nodeNameFilter,
  trafficDirectionFilter,
  ipVersionFilter,
  tcpFlagsFilter,
  replyFilter,
  interfaceFilter,
  encryptedFilter,
  ipXlatedFilter,
  serviceFilter,
  workloadFilter,
  clusterNameFilter,
  dropReasonFilter,
  httpFilter,
  dnsQueryFilter,
  nodeLabelsFilter,
  traceIdFilter,
  experimentalFilter,
];

/** FlowFilter fields (proto names) that compileFlowFilter understands. */
export const SUPPORTED_FILTER_FIELDS: ReadonlySet<string> = new Set(
  FILTER_BUILDERS.flatMap((b) => b.fields),
);

/**
 * Compile one FlowFilter: every set field must match (AND); an empty filter
 * matches every flow. A set field this package cannot filter on fails rather
 * than being ignored.
 * @throws FilterError naming the offending field.
 */
export function compileFlowFilter(ff: FlowFilter): FlowPredicate {
  for (const field of FlowFilterSchema.fields) {
    if (isFieldSet(ff, field) && !SUPPORTED_FILTER_FIELDS.has(field.name)) {
      throw new FilterError(field.name, "filtering on this field is not supported");
    }
  }
  return matchAll(FILTER_BUILDERS.flatMap((b) => b.build(ff)));
}

/**
 * Hubble's whitelist/blacklist semantics: a flow passes when it matches any
 * whitelist filter (or the whitelist is empty) and no blacklist filter.
 * @throws FilterError naming the offending field of the first bad filter.
 */
export function compileFilters(
  whitelist: readonly FlowFilter[],
  blacklist: readonly FlowFilter[],
): (flow: Flow) => boolean {
  const allow = whitelist.length === 0 ? () => true : matchOne(whitelist.map(compileFlowFilter));
  const deny = matchNone(blacklist.map(compileFlowFilter));
  return (flow) => allow(flow) && deny(flow);
}
