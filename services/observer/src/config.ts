import {
  type CommonConfig,
  type CommonSettingNames,
  checkHostPort,
  type LogLevel,
  parseCommonSettings,
  parseInteger,
  readSettings,
} from "@periscope/config";

export { ConfigError } from "@periscope/config";

/** The observer's configuration, parsed and validated once at start. */
export interface ObserverConfig extends CommonConfig {
  /** `host:port` the gRPC/Connect API listens on; port 0 picks a free port. */
  readonly listenAddr: string;
  /** Capacity of the in-memory flow ring (Hubble's max_flows). */
  readonly maxFlows: number;
  /** How long incoming events wait to be put in time order across nodes, ms (0: off). */
  readonly sortBufferMs: number;
  /** Largest request message accepted, bytes (grpc-go's default is 4 MiB); larger: ResourceExhausted. */
  readonly maxRequestBytes: number;
  /** Most whitelist + blacklist filters one GetFlows may carry; more: InvalidArgument. */
  readonly maxFilters: number;
}

/** Defaults as fixed in docs/internals.md. */
export const OBSERVER_DEFAULTS = Object.freeze({
  listenAddr: "localhost:4245",
  opsAddr: "127.0.0.1:9403",
  maxFlows: 4095,
  sortBufferMs: 100,
  maxRequestBytes: 4 * 1024 * 1024,
  maxFilters: 128,
  logLevel: "info" as LogLevel,
});

/** Largest ring we accept; beyond this memory use stops being "recent flows". */
export const MAX_FLOWS_LIMIT = 1 << 22;

/** Flag name (without `--`) → environment variable. */
const ENV_NAMES = {
  "nats-url": "PERISCOPE_NATS_URL",
  "node-name": "PERISCOPE_NODE_NAME",
  "ops-addr": "PERISCOPE_OPS_ADDR",
  "log-level": "PERISCOPE_LOG_LEVEL",
  "listen-address": "PERISCOPE_LISTEN_ADDR",
  "max-flows": "PERISCOPE_MAX_FLOWS",
  "sort-buffer-ms": "PERISCOPE_SORT_BUFFER_MS",
  "max-request-bytes": "PERISCOPE_MAX_REQUEST_BYTES",
  "max-filters": "PERISCOPE_MAX_FILTERS",
} as const satisfies CommonSettingNames;

/**
 * Builds the frozen config from command-line flags (win) and environment variables.
 * Throws {@link ConfigError} whose `field` is the flag (`--max-flows`) or the
 * environment variable (`PERISCOPE_MAX_FLOWS`) the bad value came from.
 */
export function parseConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ObserverConfig {
  const s = readSettings(ENV_NAMES, argv, env, { flagField: "flag" });
  const common = parseCommonSettings(s, {
    opsAddr: OBSERVER_DEFAULTS.opsAddr,
    fieldFromSource: true,
  });
  const listenAddr = checkHostPort(
    s.source("listen-address"),
    s.get("listen-address") ?? OBSERVER_DEFAULTS.listenAddr,
    { allowPortZero: true },
  );
  const maxFlowsRaw = s.get("max-flows");
  const maxFlows =
    maxFlowsRaw === undefined
      ? OBSERVER_DEFAULTS.maxFlows
      : parseInteger(s.source("max-flows"), maxFlowsRaw, 1, MAX_FLOWS_LIMIT);
  const sortRaw = s.get("sort-buffer-ms");
  const sortBufferMs =
    sortRaw === undefined
      ? OBSERVER_DEFAULTS.sortBufferMs
      : parseInteger(s.source("sort-buffer-ms"), sortRaw, 0, 60_000);
  const reqRaw = s.get("max-request-bytes");
  const maxRequestBytes =
    reqRaw === undefined
      ? OBSERVER_DEFAULTS.maxRequestBytes
      : parseInteger(s.source("max-request-bytes"), reqRaw, 1024, 1 << 30);
  const filtersRaw = s.get("max-filters");
  const maxFilters =
    filtersRaw === undefined
      ? OBSERVER_DEFAULTS.maxFilters
      : parseInteger(s.source("max-filters"), filtersRaw, 1, 100_000);
  return Object.freeze({
    ...common,
    listenAddr,
    maxFlows,
    sortBufferMs,
    maxRequestBytes,
    maxFilters,
  });
}

/** The process's config: `process.argv` after the script plus `process.env`. */
export function loadConfig(): ObserverConfig {
  return parseConfig(process.argv.slice(2), process.env);
}
