import type { FilterBuilder } from "./builder.ts";

/**
 * interface: the flow's interface matches a listed one; a zero index or an
 * empty name in the filter matches any.
 */
export const interfaceFilter: FilterBuilder = {
  fields: ["interface"],
  build(ff) {
    if (ff.interface.length === 0) return [];
    const wanted = ff.interface.map((i) => ({ index: i.index, name: i.name }));
    return [
      (flow) => {
        const itf = flow.interface;
        if (!itf) return false;
        return wanted.some(
          (w) => (w.index === 0 || w.index === itf.index) && (w.name === "" || w.name === itf.name),
        );
      },
    ];
  },
};
