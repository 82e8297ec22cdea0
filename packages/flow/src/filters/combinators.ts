import type { Flow } from "@periscope/proto";

/** A compiled filter criterion: true when the flow matches. */
export type FlowPredicate = (flow: Flow) => boolean;

/** Matches when every predicate matches (an empty list matches everything). */
export function matchAll(predicates: readonly FlowPredicate[]): FlowPredicate {
  if (predicates.length === 1 && predicates[0]) return predicates[0];
  return (flow) => predicates.every((p) => p(flow));
}

/** Matches when at least one predicate matches (an empty list matches nothing). */
export function matchOne(predicates: readonly FlowPredicate[]): FlowPredicate {
  if (predicates.length === 1 && predicates[0]) return predicates[0];
  return (flow) => predicates.some((p) => p(flow));
}

/** Matches when no predicate matches (an empty list matches everything). */
export function matchNone(predicates: readonly FlowPredicate[]): FlowPredicate {
  return (flow) => !predicates.some((p) => p(flow));
}
