import {
  alignColumns,
  type CompactOptions,
  DICT_SEPARATOR,
  formatCompact,
  formatDict,
  formatJson,
  formatMessageJson,
  isNodeStatusWarning,
  type TimeLayout,
  tableHeader,
  tableRow,
} from "@periscope/flow";
import { FlowSchema, type GetFlowsResponse, LostEventSchema } from "@periscope/proto";
import { UsageError } from "./args.ts";

/** Output formats of `periscope observe` (hubble's names; `tab` is an alias of table). */
export const OUTPUT_FORMATS = ["compact", "dict", "json", "jsonpb", "table"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Validates an `--output` value (`JSON` and `tab` as hubble accepts them). Throws {@link UsageError}. */
export function parseOutputFormat(value: string): OutputFormat {
  if (value === "tab") return "table";
  if (value === "JSON") return "json";
  const f = OUTPUT_FORMATS.find((o) => o === value);
  if (!f)
    throw new UsageError(
      `invalid --output "${value}": expected one of ${OUTPUT_FORMATS.join(", ")}`,
    );
  return f;
}

/** `--color` values. */
export type ColorWhen = "auto" | "always" | "never";

/** Validates `--color`. Throws {@link UsageError}. */
export function parseColor(value: string): ColorWhen {
  const v = value.toLowerCase();
  if (v === "auto" || v === "always" || v === "never") return v;
  throw new UsageError(`invalid --color "${value}": expected auto, always or never`);
}

/** Options of a {@link FlowPrinter}. */
export interface PrinterOptions {
  /** Print the node name (hubble --print-node-name). */
  readonly printNodeName: boolean;
  /** --time-format (default StampMilli). */
  readonly timeFormat?: TimeLayout;
  /** Colors on (resolved from --color and the terminal). */
  readonly color?: boolean;
  /** Names instead of IPs (false with --numeric / --ip-translation=false). */
  readonly ipTranslation?: boolean;
  /** --print-policy-names. */
  readonly policyNames?: boolean;
  /** --debug: informational node status changes too. */
  readonly debug?: boolean;
  /** `-o json` prints the bare flow (PERISCOPE_COMPAT=legacy-json-output, hubble's HUBBLE_COMPAT). */
  readonly legacyJson?: boolean;
}

/**
 * hubble observe's printer: flows and lost events on `out`, node status changes on `err`
 * (only errors and unavailable nodes unless `debug`), dict blocks separated by dashes,
 * table rows aligned once the stream ends ({@link FlowPrinter.close}).
 */
export class FlowPrinter {
  readonly #format: OutputFormat;
  readonly #text: CompactOptions;
  readonly #opts: PrinterOptions;
  readonly #out: (line: string) => void;
  readonly #err: (line: string) => void;
  #lines = 0;
  readonly #rows: string[][] = [];

  constructor(
    format: OutputFormat,
    opts: PrinterOptions,
    out: (line: string) => void,
    err: (line: string) => void,
  ) {
    this.#format = format;
    this.#opts = opts;
    this.#out = out;
    this.#err = err;
    this.#text = {
      nodeName: opts.printNodeName,
      ipTranslation: opts.ipTranslation ?? true,
      color: format === "table" ? false : (opts.color ?? false),
      policyNames: opts.policyNames ?? false,
      ...(opts.timeFormat ? { timestamps: opts.timeFormat } : {}),
    };
  }

  /** Prints one response. */
  write(resp: GetFlowsResponse): void {
    const r = resp.responseTypes;
    if (r.case === "nodeStatus") {
      if (!this.#opts.debug && !isNodeStatusWarning(r.value)) return;
      switch (this.#format) {
        case "json":
        case "jsonpb":
          if (!this.#opts.legacyJson || this.#format === "jsonpb") this.#err(formatJson(resp));
          return;
        case "dict":
          if (this.#lines !== 0) this.#err(DICT_SEPARATOR);
          else this.#lines++;
          this.#err(formatDict(resp, this.#text));
          return;
        default:
          this.#err(formatCompact(resp, this.#text));
          return;
      }
    }
    if (r.case !== "flow" && r.case !== "lostEvents") return;
    switch (this.#format) {
      case "compact":
        this.#out(formatCompact(resp, this.#text));
        break;
      case "dict":
        if (this.#lines !== 0) this.#out(DICT_SEPARATOR);
        this.#out(formatDict(resp, this.#text));
        break;
      case "json":
        if (this.#opts.legacyJson) {
          this.#out(
            r.case === "flow"
              ? formatMessageJson(FlowSchema, r.value)
              : formatMessageJson(LostEventSchema, r.value),
          );
          break;
        }
        this.#out(formatJson(resp));
        break;
      case "jsonpb":
        this.#out(formatJson(resp));
        break;
      case "table": {
        const row = tableRow(resp, this.#text);
        if (row) this.#rows.push(row);
        break;
      }
    }
    this.#lines++;
  }

  /** Ends the output: prints the aligned table (header first) when there were rows. */
  close(): void {
    if (this.#format !== "table" || this.#rows.length === 0) return;
    const lines = alignColumns([tableHeader(this.#text), ...this.#rows]);
    this.#rows.length = 0;
    this.#out(lines.join("\n"));
  }
}
