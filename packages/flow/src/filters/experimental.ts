import type { FilterBuilder } from "./builder.ts";
import { CelCompileError, compileCelExpressions } from "./cel.ts";
import { FilterError } from "./errors.ts";

/**
 * experimental: an empty message adds nothing; `cel_expression` matches a
 * flow when any of the expressions is true for it (see cel.ts).
 */
export const experimentalFilter: FilterBuilder = {
  fields: ["experimental"],
  build(ff) {
    const expressions = ff.experimental?.celExpression ?? [];
    if (expressions.length === 0) return [];
    try {
      return [compileCelExpressions(expressions)];
    } catch (err) {
      if (err instanceof CelCompileError) {
        throw new FilterError("experimental.cel_expression", err.message, { cause: err });
      }
      throw err;
    }
  },
};
