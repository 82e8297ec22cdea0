import { DEFAULT_RAW_PARTITIONS } from "@periscope/bus";
import {
  type CommonConfig,
  ConfigError,
  checkHostPort,
  parseCommonConfig,
  parseInteger,
  readServiceSettings,
} from "@periscope/config";
import { type HandlerSpec, parseMetricsSpec } from "./hubble-metrics/spec.ts";

export { ConfigError } from "@periscope/config";

/** Validated enricher configuration: the common settings plus the queue group. */
export interface EnricherConfig extends CommonConfig {
  /**
   * Name shared by all enricher replicas: partition p is read through the durable
   * `<queueGroup>-p<p>`.
   */
  readonly queueGroup: string;
  /**
   * Raw partitions shared out among the replicas (absent: DEFAULT_RAW_PARTITIONS); must
   * equal the collectors' `--partitions`.
   */
  readonly partitions?: number;
  /** Ports whose UDP/TCP payload is parsed as DNS (empty: no DNS parsing; absent: the default). */
  readonly l7DnsPorts?: readonly number[];
  /** TCP ports whose payload is parsed as HTTP/1.x (empty: no HTTP parsing; absent: the default). */
  readonly l7HttpPorts?: readonly number[];
  /** Lower-case request header names shown in l7.http.headers (Authorization/Cookie values are always redacted). */
  readonly l7HttpHeaders?: readonly string[];
  /** Hubble metrics handlers from `--metrics` (empty or absent: no Hubble metrics server). */
  readonly metrics?: readonly HandlerSpec[];
  /** `host:port` the Hubble metrics are served on (`--metrics-server`, default `:9965`). */
  readonly metricsServer?: string;
  /** Label sets one Hubble metric holds at most (`--metrics-max-label-sets`). */
  readonly metricsMaxLabelSets?: number;
}

/** Ports parsed as DNS by default. */
export const DEFAULT_L7_DNS_PORTS = "53";
/** Ports parsed as HTTP/1.x by default. */
export const DEFAULT_L7_HTTP_PORTS = "80,8080";
/** Request headers shown by default. */
export const DEFAULT_L7_HTTP_HEADERS = "content-type,user-agent,x-request-id,traceparent";

/** A comma list of ports, e.g. "80,8080"; "" or "none" is the empty list. */
function parsePorts(field: string, raw: string): number[] {
  const text = raw.trim();
  if (text === "" || text === "none") return [];
  return [...new Set(text.split(",").map((p) => parseInteger(field, p, 1, 65535)))];
}

/** A comma list of header names (RFC 9110 tokens), lower-cased. */
function parseHeaderNames(field: string, raw: string): string[] {
  const out: string[] = [];
  for (const part of raw.split(",")) {
    const name = part.trim().toLowerCase();
    if (name === "") continue;
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) {
      throw new ConfigError(field, `"${part.trim()}" is not a header name`);
    }
    out.push(name);
  }
  return out;
}

/**
 * The enricher's own settings, flag name (without `--`) → environment variable; the common
 * ones (PERISCOPE_NATS_URL, PERISCOPE_NODE_NAME, PERISCOPE_OPS_ADDR, PERISCOPE_LOG_LEVEL)
 * come from `@periscope/config`.
 */
const OWN_SETTINGS = {
  "queue-group": "PERISCOPE_ENRICHER_QUEUE_GROUP",
  partitions: "PERISCOPE_PARTITIONS",
  "l7-dns-ports": "PERISCOPE_L7_DNS_PORTS",
  "l7-http-ports": "PERISCOPE_L7_HTTP_PORTS",
  "l7-http-headers": "PERISCOPE_L7_HTTP_HEADERS",
  metrics: "PERISCOPE_METRICS",
  "metrics-server": "PERISCOPE_METRICS_SERVER",
  "metrics-max-label-sets": "PERISCOPE_METRICS_MAX_LABEL_SETS",
} as const;

/**
 * Parses flags (which win) and environment into a frozen config. Throws ConfigError
 * naming where the first bad value came from (`--queue-group` or its variable).
 */
export function parseConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Readonly<EnricherConfig> {
  const settings = readServiceSettings(OWN_SETTINGS, argv, env);
  const common = parseCommonConfig(settings, "127.0.0.1:9402");
  const queueGroup = settings.get("queue-group") ?? "enrichers";
  if (!/^[A-Za-z0-9_-]+$/.test(queueGroup)) {
    throw new ConfigError(
      settings.source("queue-group"),
      `"${queueGroup}" may only hold letters, digits, _ and -`,
    );
  }
  const partitionsRaw = settings.get("partitions");
  const partitions =
    partitionsRaw === undefined
      ? DEFAULT_RAW_PARTITIONS
      : parseInteger(settings.source("partitions"), partitionsRaw, 1, 4096);
  const l7DnsPorts = parsePorts(
    settings.source("l7-dns-ports"),
    settings.get("l7-dns-ports") ?? DEFAULT_L7_DNS_PORTS,
  );
  const l7HttpPorts = parsePorts(
    settings.source("l7-http-ports"),
    settings.get("l7-http-ports") ?? DEFAULT_L7_HTTP_PORTS,
  );
  const l7HttpHeaders = parseHeaderNames(
    settings.source("l7-http-headers"),
    settings.get("l7-http-headers") ?? DEFAULT_L7_HTTP_HEADERS,
  );
  // Only what was given: startConfiguredHubbleMetrics applies the defaults.
  const metricsRaw = settings.get("metrics");
  const metricsServer = settings.get("metrics-server");
  const hubbleMetrics = {
    ...(metricsRaw !== undefined
      ? { metrics: parseMetricsSpec(settings.source("metrics"), metricsRaw) }
      : {}),
    ...(metricsServer !== undefined
      ? {
          metricsServer: checkHostPort(settings.source("metrics-server"), metricsServer, {
            allowPortZero: true,
          }),
        }
      : {}),
    ...(settings.get("metrics-max-label-sets") !== undefined
      ? { metricsMaxLabelSets: settings.integer("metrics-max-label-sets", 0, 1, 1_000_000) }
      : {}),
  };
  return Object.freeze({
    ...common,
    queueGroup,
    partitions,
    l7DnsPorts,
    l7HttpPorts,
    l7HttpHeaders,
    ...hubbleMetrics,
  });
}

/** The config of this process (command line and environment). */
export function loadConfig(): Readonly<EnricherConfig> {
  return parseConfig(process.argv.slice(2), process.env);
}
