import {
  type CommonConfig,
  ConfigError,
  checkHostPort,
  type LogLevel,
  parseCommonConfig,
  readServiceSettings,
} from "@periscope/config";

export { ConfigError };

/** The observer's configuration, parsed and validated once at start. */
export interface ObserverConfig extends CommonConfig {
  /** `host:port` the gRPC/Connect API listens on; port 0 picks a free port. */
  readonly listenAddr: string;
  /** Capacity of the in-memory flow ring (Hubble's max_flows). */
  readonly maxFlows: number;
  /** How long incoming events wait to be put in time order across nodes, ms (0: off). */
  readonly sortBufferMs: number;
  /** Seconds of the flows stream's history read into the ring at start (0: none). */
  readonly historySinceSec: number;
  /** Largest request message accepted, bytes (grpc-go's default is 4 MiB); larger: ResourceExhausted. */
  readonly maxRequestBytes: number;
  /** Most whitelist + blacklist filters one GetFlows may carry; more: InvalidArgument. */
  readonly maxFilters: number;
  /** Most server streams (GetFlows, GetAgentEvents, GetDebugEvents, peer Notify) open at once; more: ResourceExhausted. */
  readonly maxConcurrentStreams: number;
  /** `host:port` of the recorder service; recorder.Recorder calls here are forwarded to it. */
  readonly recorderAddr: string;
  /** PEM certificate (chain) the API serves TLS with; with {@link tlsKeyFile}. */
  readonly tlsCertFile?: string | undefined;
  /** PEM private key of {@link tlsCertFile}. */
  readonly tlsKeyFile?: string | undefined;
  /** CA bundles client certificates must chain to (mutual TLS); empty: no client certificates. */
  readonly tlsClientCaFiles?: readonly string[] | undefined;
  /** htpasswd-like `user:password` file (bcrypt or plain); set: basic auth accepted. */
  readonly basicAuthFile?: string | undefined;
  /** One bearer token per line; set: bearer tokens accepted. */
  readonly bearerTokenFile?: string | undefined;
}

/** Defaults as fixed in docs/internals.md. */
export const OBSERVER_DEFAULTS = Object.freeze({
  listenAddr: "localhost:4245",
  opsAddr: "127.0.0.1:9403",
  maxFlows: 4095,
  sortBufferMs: 100,
  historySinceSec: 3600,
  maxRequestBytes: 4 * 1024 * 1024,
  maxFilters: 128,
  maxConcurrentStreams: 128,
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
  "history-since": "PERISCOPE_HISTORY_SINCE",
  "max-request-bytes": "PERISCOPE_MAX_REQUEST_BYTES",
  "max-filters": "PERISCOPE_MAX_FILTERS",
  "max-concurrent-streams": "PERISCOPE_MAX_CONCURRENT_STREAMS",
  "recorder-address": "PERISCOPE_RECORDER_ADDR",
  "tls-cert-file": "PERISCOPE_TLS_CERT_FILE",
  "tls-key-file": "PERISCOPE_TLS_KEY_FILE",
  "tls-client-ca-files": "PERISCOPE_TLS_CLIENT_CA_FILES",
  "basic-auth-file": "PERISCOPE_BASIC_AUTH_FILE",
  "bearer-token-file": "PERISCOPE_BEARER_TOKEN_FILE",
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
  const listen = s.get("listen-address") ?? d.listenAddr;
  const tlsCertFile = s.get("tls-cert-file");
  const tlsKeyFile = s.get("tls-key-file");
  const clientCas = s.get("tls-client-ca-files");
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    const given = tlsCertFile === undefined ? "tls-key-file" : "tls-cert-file";
    throw new ConfigError(s.source(given), "--tls-cert-file and --tls-key-file go together");
  }
  if (clientCas !== undefined && tlsCertFile === undefined) {
    throw new ConfigError(
      s.source("tls-client-ca-files"),
      "client CAs need TLS: set --tls-cert-file and --tls-key-file too",
    );
  }
  return Object.freeze({
    ...parseCommonConfig(s, d.opsAddr),
    listenAddr: listen.startsWith("unix://")
      ? checkUnixAddr(s.source("listen-address"), listen)
      : checkHostPort(s.source("listen-address"), listen, { allowPortZero: true }),
    maxFlows: s.integer("max-flows", d.maxFlows, 1, MAX_FLOWS_LIMIT),
    sortBufferMs: s.integer("sort-buffer-ms", d.sortBufferMs, 0, 60_000),
    historySinceSec: s.integer("history-since", d.historySinceSec, 0, 7 * 24 * 3600),
    maxRequestBytes: s.integer("max-request-bytes", d.maxRequestBytes, 1024, 1 << 30),
    maxFilters: s.integer("max-filters", d.maxFilters, 1, 100_000),
    maxConcurrentStreams: s.integer("max-concurrent-streams", d.maxConcurrentStreams, 1, 100_000),
    recorderAddr: checkHostPort(
      s.source("recorder-address"),
      s.get("recorder-address") ?? d.recorderAddr,
    ),
    tlsCertFile,
    tlsKeyFile,
    tlsClientCaFiles: clientCas
      ?.split(",")
      .map((f) => f.trim())
      .filter((f) => f !== ""),
    basicAuthFile: s.get("basic-auth-file"),
    bearerTokenFile: s.get("bearer-token-file"),
  });
}

/** A `unix:///absolute/path` listen address, checked. */
function checkUnixAddr(field: string, raw: string): string {
  const path = raw.slice("unix://".length);
  if (!path.startsWith("/")) {
    throw new ConfigError(field, `"${raw}": a unix socket address is unix:///absolute/path`);
  }
  return raw;
}

/** The process's config: `process.argv` after the script plus `process.env`. */
export function loadConfig(): ObserverConfig {
  return parseConfig(process.argv.slice(2), process.env);
}
