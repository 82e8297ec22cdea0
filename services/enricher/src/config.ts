import {
  type CommonConfig,
  ConfigError,
  parseCommonConfig,
  readServiceSettings,
} from "@periscope/config";

export { ConfigError } from "@periscope/config";

/** Validated enricher configuration: the common settings plus the queue group. */
export interface EnricherConfig extends CommonConfig {
  /** Queue group shared by all enricher replicas. */
  readonly queueGroup: string;
}

/**
 * The enricher's own settings, flag name (without `--`) → environment variable; the common
 * ones (PERISCOPE_NATS_URL, PERISCOPE_NODE_NAME, PERISCOPE_OPS_ADDR, PERISCOPE_LOG_LEVEL)
 * come from `@periscope/config`.
 */
const OWN_SETTINGS = {
  "queue-group": "PERISCOPE_ENRICHER_QUEUE_GROUP",
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
  return Object.freeze({ ...common, queueGroup });
}

/** The config of this process (command line and environment). */
export function loadConfig(): Readonly<EnricherConfig> {
  return parseConfig(process.argv.slice(2), process.env);
}
