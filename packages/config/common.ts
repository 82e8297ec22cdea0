import type { LogLevel } from "./log-level.ts";
import type { ServiceSettings } from "./settings.ts";
import { checkHostPort, checkNatsUrl, parseLogLevel, resolveNodeName } from "./validate.ts";

/** Settings every service has (docs/internals.md): flag name → environment variable. */
export const COMMON_SETTINGS = {
  "nats-url": "PERISCOPE_NATS_URL",
  "node-name": "PERISCOPE_NODE_NAME",
  "ops-addr": "PERISCOPE_OPS_ADDR",
  "log-level": "PERISCOPE_LOG_LEVEL",
} as const;

/** One of {@link COMMON_SETTINGS}' names. */
export type CommonSetting = keyof typeof COMMON_SETTINGS;

/** The part of every service's configuration that {@link COMMON_SETTINGS} hold. */
export interface CommonConfig {
  /** NATS URL (or comma list); undefined means the default (`nats://127.0.0.1:4222`). */
  readonly natsUrl: string | undefined;
  /** Node name as given (default: the hostname); sanitized only where it goes into subjects. */
  readonly nodeName: string;
  /** `host:port` of the ops server (/metrics, /healthz, /readyz); port 0 picks a free one. */
  readonly opsAddr: string;
  /** Logger level (default "info"). */
  readonly logLevel: LogLevel;
}

/**
 * Validates the common settings read by readServiceSettings: NATS URL, node name, ops
 * address (port 0 allowed; `opsAddr` is the service's default) and log level. Throws
 * ConfigError naming where the first bad value came from (`--ops-addr` or `PERISCOPE_OPS_ADDR`).
 */
export function parseCommonConfig(
  settings: Pick<ServiceSettings<CommonSetting>, "get" | "source">,
  opsAddr: string,
): CommonConfig {
  const natsUrl = settings.get("nats-url");
  const field = (setting: CommonSetting): string => settings.source(setting);
  return {
    natsUrl: natsUrl === undefined ? undefined : checkNatsUrl(field("nats-url"), natsUrl),
    nodeName: resolveNodeName(field("node-name"), settings.get("node-name")),
    opsAddr: checkHostPort(field("ops-addr"), settings.get("ops-addr") ?? opsAddr, {
      allowPortZero: true,
    }),
    logLevel: parseLogLevel(field("log-level"), settings.get("log-level") ?? "info"),
  };
}
