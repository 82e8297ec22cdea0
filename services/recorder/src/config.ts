import { hostname } from "node:os";
import { isLogLevel, LOG_LEVELS, type LogLevel, parseHostPort } from "@periscope/telemetry";

/** Recorder settings, parsed once at start-up. */
export interface RecorderConfig {
  /** NATS URL(s); undefined → nats://127.0.0.1:4222, starting a local server if none answers. */
  readonly natsUrl: string | undefined;
  /** This node's name (default: the hostname). */
  readonly nodeName: string;
  /** `host:port` of the ops server (/metrics, /healthz, /readyz). */
  readonly opsAddr: string;
  readonly logLevel: LogLevel;
}

/** A setting that cannot be used; `field` is the flag name without dashes (e.g. "ops-addr"). */
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

/** flag name → environment variable. */
const SETTINGS = {
  "nats-url": "PERISCOPE_NATS_URL",
  "node-name": "PERISCOPE_NODE_NAME",
  "ops-addr": "PERISCOPE_OPS_ADDR",
  "log-level": "PERISCOPE_LOG_LEVEL",
} as const;
type Setting = keyof typeof SETTINGS;

export const DEFAULT_OPS_ADDR = "127.0.0.1:9404";

function isSetting(name: string): name is Setting {
  return Object.hasOwn(SETTINGS, name);
}

/** Reads `--flag value` / `--flag=value` pairs; flags win over the environment. */
function collect(argv: readonly string[], env: Readonly<Record<string, string | undefined>>) {
  const values = new Map<Setting, string>();
  for (const [flag, envName] of Object.entries(SETTINGS) as [Setting, string][]) {
    const v = env[envName];
    if (v !== undefined && v !== "") values.set(flag, v);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m?.[1]) throw new ConfigError(arg, "unexpected argument");
    const name = m[1];
    if (!isSetting(name)) throw new ConfigError(name, "unknown flag");
    let value = m[2];
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined) throw new ConfigError(name, "missing value");
      i++;
    }
    values.set(name, value);
  }
  return values;
}

/** Parses flags and environment into a frozen config; throws {@link ConfigError}. */
export function parseConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): RecorderConfig {
  const v = collect(argv, env);
  const natsUrl = v.get("nats-url");
  if (natsUrl !== undefined) {
    for (const u of natsUrl.split(",")) {
      if (!/^(nats|tls|ws|wss):\/\/[^\s/]+$/.test(u.trim())) {
        throw new ConfigError("nats-url", `"${u}" is not a nats://host:port URL`);
      }
    }
  }
  const nodeName = v.get("node-name") ?? hostname();
  if (nodeName.trim() === "") throw new ConfigError("node-name", "must not be empty");
  const opsAddr = v.get("ops-addr") ?? DEFAULT_OPS_ADDR;
  try {
    parseHostPort(opsAddr);
  } catch (err) {
    throw new ConfigError("ops-addr", `"${opsAddr}" is not host:port`, { cause: err });
  }
  const logLevel = v.get("log-level") ?? "info";
  if (!isLogLevel(logLevel)) {
    throw new ConfigError("log-level", `"${logLevel}" is not one of ${LOG_LEVELS.join(", ")}`);
  }
  return Object.freeze({ natsUrl, nodeName, opsAddr, logLevel });
}

/** The config of this process (command line and environment). */
export function loadConfig(): RecorderConfig {
  return parseConfig(process.argv.slice(2), process.env);
}
