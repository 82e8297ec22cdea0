import { formatCompact, formatDict, formatJson } from "@periscope/flow";
import type { GetFlowsResponse } from "@periscope/proto";
import { UsageError } from "./args.ts";

/** Output formats of `periscope observe` (hubble's names). */
export const OUTPUT_FORMATS = ["compact", "json", "jsonpb", "dict"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Validates an `--output` value. Throws {@link UsageError}. */
export function parseOutputFormat(value: string): OutputFormat {
  const f = OUTPUT_FORMATS.find((o) => o === value);
  if (!f)
    throw new UsageError(
      `invalid --output "${value}": expected one of ${OUTPUT_FORMATS.join(", ")}`,
    );
  return f;
}

/** Options for {@link createPrinter}. */
export interface PrinterOptions {
  /** Prefix compact lines with the node name. */
  readonly printNodeName: boolean;
}

/** A function rendering one GetFlowsResponse as the text to print (no trailing newline). */
export function createPrinter(
  format: OutputFormat,
  opts: PrinterOptions,
): (resp: GetFlowsResponse) => string {
  switch (format) {
    case "compact":
      return (resp) => formatCompact(resp, { nodeName: opts.printNodeName });
    case "json":
    case "jsonpb":
      return (resp) => formatJson(resp);
    case "dict":
      return formatDict;
  }
}
