import { hostname } from "node:os";
import { isLogLevel, type LogLevel, parseHostPort } from "@periscope/telemetry";

/** The observer's configuration, parsed and validated once at start. */
export interface ObserverConfig {
  /** NATS server URL; undefined means the local default (and start one if nothing answers). */
  readonly natsUrl: string | undefined;
  /** This observer's node name (reported for lost events and in logs). */
  readonly nodeName: string;
  /** `host:port` the gRPC/Connect API listens on; port 0 picks a free port. */
  readonly listenAddr: string;
  /** `host:port` of the ops server (/metrics, /healthz, /readyz). */
  readonly opsAddr: string;
  /** Capacity of the in-memory flow ring (Hubble's max_flows). */
  readonly maxFlows: number;
  readonly logLevel: LogLevel;
}

/** A configuration value that cannot be used; `field` names the flag/env it came from. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${message}`, options);
  }
}

/** Defaults as fixed in docs/internals.md. */
export const OBSERVER_DEFAULTS = Object.freeze({
  listenAddr: "localhost:4245",
  opsAddr: "127.0.0.1:9403",
  maxFlows: 4095,
  logLevel: "info" as LogLevel,
});

/** Largest ring we accept; beyond this memory use stops being "recent flows". */
export const MAX_FLOWS_LIMIT = 1 << 22;

interface FieldSpec {
  key: keyof ObserverConfig;
  flag: string;
  env: string;
}

const FIELDS: readonly FieldSpec[] = [
  { key: "natsUrl", flag: "--nats-url", env: "PERISCOPE_NATS_URL" },
  { key: "nodeName", flag: "--node-name", env: "PERISCOPE_NODE_NAME" },
  { key: "listenAddr", flag: "--listen-address", env: "PERISCOPE_LISTEN_ADDR" },
  { key: "opsAddr", flag: "--ops-addr", env: "PERISCOPE_OPS_ADDR" },
  { key: "maxFlows", flag: "--max-flows", env: "PERISCOPE_MAX_FLOWS" },
  { key: "logLevel", flag: "--log-level", env: "PERISCOPE_LOG_LEVEL" },
];

/** Reads `--flag value` / `--flag=value` pairs; unknown flags are an error. */
function parseFlags(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const eq = arg.indexOf("=");
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    if (!FIELDS.some((f) => f.flag === flag)) {
      throw new ConfigError(flag, "unknown flag");
    }
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined) throw new ConfigError(flag, "needs a value");
    out.set(flag, value);
  }
  return out;
}

function checkAddr(field: string, addr: string): string {
  try {
    parseHostPort(addr);
  } catch (err) {
    throw new ConfigError(field, `"${addr}" is not a host:port address`, { cause: err });
  }
  return addr;
}

/**
 * Builds the frozen config from command-line flags (win) and environment variables.
 * Throws {@link ConfigError} naming the bad field.
 */
export function parseConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ObserverConfig {
  const flags = parseFlags(argv);
  const raw = (key: keyof ObserverConfig): { field: string; value: string | undefined } => {
    const spec = FIELDS.find((f) => f.key === key);
    if (!spec) throw new ConfigError(key, "no such setting");
    const flagValue = flags.get(spec.flag);
    if (flagValue !== undefined) return { field: spec.flag, value: flagValue };
    const envValue = env[spec.env];
    return { field: spec.env, value: envValue === "" ? undefined : envValue };
  };

  const nats = raw("natsUrl");
  if (nats.value !== undefined && !/^(nats|tls|ws|wss):\/\/./.test(nats.value)) {
    throw new ConfigError(nats.field, `"${nats.value}" is not a nats:// URL`);
  }

  const node = raw("nodeName");
  const nodeName = node.value ?? hostname();
  if (nodeName.trim() === "") throw new ConfigError(node.field, "must not be empty");

  const listen = raw("listenAddr");
  const ops = raw("opsAddr");

  const max = raw("maxFlows");
  let maxFlows: number = OBSERVER_DEFAULTS.maxFlows;
  if (max.value !== undefined) {
    if (!/^\d+$/.test(max.value))
      throw new ConfigError(max.field, `"${max.value}" is not a number`);
    maxFlows = Number(max.value);
    if (maxFlows < 1 || maxFlows > MAX_FLOWS_LIMIT) {
      throw new ConfigError(max.field, `must be between 1 and ${MAX_FLOWS_LIMIT}`);
    }
  }

  const level = raw("logLevel");
  const logLevel = level.value ?? OBSERVER_DEFAULTS.logLevel;
  if (!isLogLevel(logLevel)) throw new ConfigError(level.field, `unknown log level "${logLevel}"`);

  return Object.freeze({
    natsUrl: nats.value,
    nodeName,
    listenAddr: checkAddr(listen.field, listen.value ?? OBSERVER_DEFAULTS.listenAddr),
    opsAddr: checkAddr(ops.field, ops.value ?? OBSERVER_DEFAULTS.opsAddr),
    maxFlows,
    logLevel,
  });
}

/** The process's config: `process.argv` after the script plus `process.env`. */
export function loadConfig(): ObserverConfig {
  return parseConfig(process.argv.slice(2), process.env);
}
