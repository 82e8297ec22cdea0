import type { FilterBuilder } from "./builder.ts";
import type { FlowPredicate } from "./combinators.ts";
import { FilterError } from "./errors.ts";
import { compileFqdnPatterns } from "./patterns.ts";

function compile(field: string, patterns: readonly string[]): RegExp {
  try {
    return compileFqdnPatterns(patterns);
  } catch (err) {
    throw new FilterError(field, `${(err as Error).message} in ${JSON.stringify(patterns)}`, {
      cause: err,
    });
  }
}

/** source_fqdn, destination_fqdn: any of the flow's DNS names matches a pattern. */
export const fqdnFilter: FilterBuilder = {
  fields: ["source_fqdn", "destination_fqdn"],
  build(ff) {
    const out: FlowPredicate[] = [];
    if (ff.sourceFqdn.length > 0) {
      const re = compile("source_fqdn", ff.sourceFqdn);
      out.push((flow) => flow.sourceNames.some((n) => re.test(n)));
    }
    if (ff.destinationFqdn.length > 0) {
      const re = compile("destination_fqdn", ff.destinationFqdn);
      out.push((flow) => flow.destinationNames.some((n) => re.test(n)));
    }
    return out;
  },
};
