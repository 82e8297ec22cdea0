import { hostname } from "node:os";

/** A configuration value that cannot be used; `field` names the option. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${message}`, options);
  }
}

/** Validated enricher configuration. */
export interface EnricherConfig {
  /** NATS server URL; undefined means "local default, start one if none answers". */
  readonly natsUrl: string | undefined;
  /** Name this enricher reports itself as (logs, metrics). */
  readonly nodeName: string;
  /** Queue group shared by all enricher replicas. */
  readonly queueGroup: string;
  /** host:port of the metrics/health listener. */
  readonly opsAddr: string;
  readonly logLevel: string;
}

const LOG_LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

interface OptionSpec {
  flag: string;
  env: string;
}

const OPTIONS = {
  natsUrl: { flag: "--nats-url", env: "PERISCOPE_NATS_URL" },
  nodeName: { flag: "--node-name", env: "PERISCOPE_NODE_NAME" },
  queueGroup: { flag: "--queue-group", env: "PERISCOPE_ENRICHER_QUEUE_GROUP" },
  opsAddr: { flag: "--ops-addr", env: "PERISCOPE_OPS_ADDR" },
  logLevel: { flag: "--log-level", env: "PERISCOPE_LOG_LEVEL" },
} satisfies Record<keyof EnricherConfig, OptionSpec>;

function parseFlags(argv: readonly string[]): Map<string, string> {
  const known = new Set(Object.values(OPTIONS).map((o) => o.flag));
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const eq = arg.indexOf("=");
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    if (!known.has(flag)) throw new ConfigError(flag, "unknown flag");
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new ConfigError(flag, "missing value");
    out.set(flag, value);
  }
  return out;
}

function checkHostPort(field: string, value: string): string {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) > 65535) throw new ConfigError(field, `"${value}" is not host:port`);
  return value;
}

/**
 * Parse flags (taking precedence) and environment into a frozen config.
 * Throws ConfigError naming the first bad option.
 */
export function loadConfig(
  argv: readonly string[] = process.argv.slice(2),
  env: Record<string, string | undefined> = process.env,
): Readonly<EnricherConfig> {
  const flags = parseFlags(argv);
  const pick = (o: OptionSpec): string | undefined => {
    const v = flags.get(o.flag) ?? env[o.env];
    return v === "" ? undefined : v;
  };
  const natsUrl = pick(OPTIONS.natsUrl);
  if (natsUrl !== undefined && !/^(nats|tls|ws|wss):\/\/[^\s]+$/.test(natsUrl)) {
    throw new ConfigError("nats-url", `"${natsUrl}" is not a nats:// URL`);
  }
  const logLevel = pick(OPTIONS.logLevel) ?? "info";
  if (!LOG_LEVELS.has(logLevel)) {
    throw new ConfigError("log-level", `"${logLevel}" is not one of ${[...LOG_LEVELS].join(", ")}`);
  }
  const queueGroup = pick(OPTIONS.queueGroup) ?? "enrichers";
  if (!/^[A-Za-z0-9_-]+$/.test(queueGroup)) {
    throw new ConfigError("queue-group", `"${queueGroup}" may only hold letters, digits, _ and -`);
  }
  return Object.freeze({
    natsUrl,
    nodeName: pick(OPTIONS.nodeName) ?? hostname(),
    queueGroup,
    opsAddr: checkHostPort("ops-addr", pick(OPTIONS.opsAddr) ?? "127.0.0.1:9402"),
    logLevel,
  });
}
