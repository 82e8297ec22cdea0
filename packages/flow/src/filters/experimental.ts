import type { FilterBuilder } from "./builder.ts";
import { FilterError } from "./errors.ts";

/**
 * experimental: an empty message is accepted and adds nothing; CEL
 * expressions are refused rather than ignored.
 */
export const experimentalFilter: FilterBuilder = {
  fields: ["experimental"],
  build(ff) {
    if ((ff.experimental?.celExpression.length ?? 0) > 0) {
      throw new FilterError(
        "experimental",
        "CEL expressions (cel_expression) are not supported yet",
      );
    }
    return [];
  },
};
