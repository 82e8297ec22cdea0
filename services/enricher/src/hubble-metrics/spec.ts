import { ConfigError } from "@periscope/config";
import { parseContextOptions } from "./context.ts";

/** Where Hubble metrics are served unless `--metrics-server` says otherwise (Hubble's port). */
export const DEFAULT_METRICS_SERVER = ":9965";

/** Label sets one Hubble metric holds by default. */
export const DEFAULT_MAX_LABEL_SETS = 4096;

/** Handlers `--metrics` may name, as Hubble names them. */
export const HANDLER_NAMES = [
  "flow",
  "drop",
  "tcp",
  "dns",
  "http",
  "httpV2",
  "icmp",
  "port-distribution",
] as const;

/** A handler name from {@link HANDLER_NAMES}. */
export type HandlerName = (typeof HANDLER_NAMES)[number];

/** Options every handler takes (Hubble's context options), lower-cased. */
export const CONTEXT_OPTION_KEYS = [
  "sourcecontext",
  "destinationcontext",
  "sourceegresscontext",
  "sourceingresscontext",
  "destinationegresscontext",
  "destinationingresscontext",
  "labelscontext",
] as const;

/** Options a handler takes besides the context ones, lower-cased. */
const HANDLER_OPTIONS: Readonly<Record<HandlerName, readonly string[]>> = {
  flow: [],
  drop: [],
  tcp: [],
  dns: ["query", "ignoreaaaa"],
  http: [],
  httpV2: [],
  icmp: [],
  "port-distribution": [],
};

/** Label names `labelsContext` may list, in the order they appear on a metric. */
export const CONTEXT_LABELS = [
  "source_ip",
  "source_pod",
  "source_namespace",
  "source_workload",
  "source_app",
  "destination_ip",
  "destination_pod",
  "destination_namespace",
  "destination_workload",
  "destination_app",
  "traffic_direction",
] as const;

/** One enabled handler and its options (keys lower-cased, as Hubble matches them). */
export interface HandlerSpec {
  readonly name: HandlerName;
  /** Lower-cased option key → value ("" for a bare option like `query`). */
  readonly options: ReadonlyMap<string, string>;
}

const isHandler = (name: string): name is HandlerName =>
  (HANDLER_NAMES as readonly string[]).includes(name);
const isContextLabel = (name: string): boolean =>
  (CONTEXT_LABELS as readonly string[]).includes(name);

/**
 * Splits a Hubble metrics list into handler words. Handlers are separated by spaces
 * (Hubble's helm/agent form) or commas (`dns:query;ignoreAAAA,drop,tcp`); a comma piece
 * that is a `labelsContext` label name continues the previous handler's label list.
 */
function handlerWords(raw: string): string[] {
  const words: string[] = [];
  for (const word of raw.trim().split(/\s+/)) {
    if (word === "") continue;
    for (const piece of word.split(",")) {
      const last = words.length - 1;
      if (last >= 0 && isContextLabel(piece) && /labelscontext=[^;]*$/i.test(words[last] ?? "")) {
        words[last] = `${words[last]},${piece}`;
      } else if (piece !== "") {
        words.push(piece);
      }
    }
  }
  return words;
}

/**
 * Parses `--metrics` in Hubble's syntax: `handler[:opt[=value][;opt[=value]...]]`, handlers
 * separated by spaces or commas, e.g.
 * `dns:query;ignoreAAAA,drop,tcp,flow:sourceContext=namespace|pod;destinationContext=pod`.
 * Throws ConfigError (for `field`) naming an unknown handler, a handler given twice, an
 * option the handler does not take, a bad context value, or both `http` and `httpV2`.
 */
export function parseMetricsSpec(field: string, raw: string): HandlerSpec[] {
  const specs: HandlerSpec[] = [];
  for (const word of handlerWords(raw)) {
    const colon = word.indexOf(":");
    const name = colon < 0 ? word : word.slice(0, colon);
    if (!isHandler(name)) {
      throw new ConfigError(
        field,
        `unknown metric handler "${name}" (known: ${HANDLER_NAMES.join(", ")})`,
      );
    }
    if (specs.some((s) => s.name === name)) {
      throw new ConfigError(field, `metric handler "${name}" given twice`);
    }
    const options = new Map<string, string>();
    const text = colon < 0 ? "" : word.slice(colon + 1);
    for (const option of text.split(";")) {
      if (option === "") continue;
      const eq = option.indexOf("=");
      const key = (eq < 0 ? option : option.slice(0, eq)).toLowerCase();
      const value = eq < 0 ? "" : option.slice(eq + 1);
      const known =
        (CONTEXT_OPTION_KEYS as readonly string[]).includes(key) ||
        HANDLER_OPTIONS[name].includes(key);
      if (!known) {
        throw new ConfigError(field, `metric handler "${name}" has no option "${option}"`);
      }
      options.set(key, value);
    }
    parseContextOptions(field, name, options);
    specs.push({ name, options });
  }
  if (specs.some((s) => s.name === "http") && specs.some((s) => s.name === "httpV2")) {
    throw new ConfigError(field, `metric handlers "http" and "httpV2" cannot both be enabled`);
  }
  return specs;
}
