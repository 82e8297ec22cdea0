import type { FilterBuilder } from "./builder.ts";
import { FilterError } from "./errors.ts";
import { compileNodeNamePatterns } from "./patterns.ts";

/** Cluster name assumed for node names without one, as in Cilium. */
export const DEFAULT_CLUSTER_NAME = "default";

/**
 * node_name: "[cluster/]node" patterns with `*` wildcards ("node-1",
 * "node-*", "prod/*"); node names without a cluster are in "default".
 */
export const nodeNameFilter: FilterBuilder = {
  fields: ["node_name"],
  build(ff) {
    if (ff.nodeName.length === 0) return [];
    let re: RegExp;
    try {
      re = compileNodeNamePatterns(ff.nodeName);
    } catch (err) {
      throw new FilterError(
        "node_name",
        `${(err as Error).message} in ${JSON.stringify(ff.nodeName)}`,
        {
          cause: err,
        },
      );
    }
    return [
      (flow) => {
        if (flow.nodeName === "") return false;
        const name = flow.nodeName.includes("/")
          ? flow.nodeName
          : `${DEFAULT_CLUSTER_NAME}/${flow.nodeName}`;
        return re.test(name);
      },
    ];
  },
};
