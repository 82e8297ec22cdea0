import type { FlowFilter } from "@periscope/proto";
import type { FlowPredicate } from "./combinators.ts";

/**
 * One filter criterion: the FlowFilter fields (proto names) it handles and a
 * function that compiles them into predicates, throwing FilterError when a
 * value is invalid. An unset field yields no predicate.
 */
export interface FilterBuilder {
  readonly fields: readonly string[];
  build(ff: FlowFilter): FlowPredicate[];
}
