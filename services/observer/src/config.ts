import {
  type CommonConfig,
  checkHostPort,
  type LogLevel,
  parseCommonConfig,
  readServiceSettings,
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
  /** `host:port` of the recorder service; recorder.Recorder calls here are forwarded to it. */
  readonly recorderAddr: string;
}

/** Defaults as fixed in docs/internals.md. */
export const OBSERVER_DEFAULTS = Object.freeze({
  listenAddr: "localhost:4245",
  opsAddr: "127.0.0.1:9403",
  maxFlows: 4095,
  sortBufferMs: 100,
  maxRequestBytes: 4 * 1024 * 1024,
  maxFilters: 128,
  recorderAddr: "localhost:4246",
  logLevel: "info" as LogLevel,
});

/** Largest ring we accept; beyond this memory use stops being "recent flows". */
export const MAX_FLOWS_LIMIT = 1 << 22;

/**
 * The observer's own settings, flag name (without `--`) → environment variable; the common
 * ones (PERISCOPE_NATS_URL, PERISCOPE_NODE_NAME, PERISCOPE_OPS_ADDR, PERISCOPE_LOG_LEVEL)
 * come from `@periscope/config`.
 */
const OWN_SETTINGS = {
  "listen-address": "PERISCOPE_LISTEN_ADDR",
  "max-flows": "PERISCOPE_MAX_FLOWS",
  "sort-buffer-ms": "PERISCOPE_SORT_BUFFER_MS",
  "max-request-bytes": "PERISCOPE_MAX_REQUEST_BYTES",
  "max-filters": "PERISCOPE_MAX_FILTERS",
  "recorder-address": "PERISCOPE_RECORDER_ADDR",
} as const;

/**
 * Builds the frozen config from command-line flags (win) and environment variables.
 * Throws {@link ConfigError} whose `field` is the flag (`--max-flows`) or the
 * environment variable (`PERISCOPE_MAX_FLOWS`) the bad value came from.
 */
export function parseConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ObserverConfig {
  const s = readServiceSettings(OWN_SETTINGS, argv, env);
  const d = OBSERVER_DEFAULTS;
  return Object.freeze({
    ...parseCommonConfig(s, d.opsAddr),
    listenAddr: checkHostPort(s.source("listen-address"), s.get("listen-address") ?? d.listenAddr, {
      allowPortZero: true,
    }),
    maxFlows: s.integer("max-flows", d.maxFlows, 1, MAX_FLOWS_LIMIT),
    sortBufferMs: s.integer("sort-buffer-ms", d.sortBufferMs, 0, 60_000),
    maxRequestBytes: s.integer("max-request-bytes", d.maxRequestBytes, 1024, 1 << 30),
    maxFilters: s.integer("max-filters", d.maxFilters, 1, 100_000),
    recorderAddr: checkHostPort(
      s.source("recorder-address"),
      s.get("recorder-address") ?? d.recorderAddr,
    ),
  });
}

/** The process's config: `process.argv` after the script plus `process.env`. */
export function loadConfig(): ObserverConfig {
  return parseConfig(process.argv.slice(2), process.env);
}
