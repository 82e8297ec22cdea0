import {
  type CommonConfig,
  type CommonSettingNames,
  ConfigError,
  parseCommonSettings,
  readSettings,
} from "@periscope/config";

export { ConfigError } from "@periscope/config";

/** Validated enricher configuration: the common settings plus the queue group. */
export interface EnricherConfig extends CommonConfig {
  /** Queue group shared by all enricher replicas. */
  readonly queueGroup: string;
}

/** Flag name (without `--`) → environment variable. */
const ENV_NAMES = {
  "nats-url": "PERISCOPE_NATS_URL",
  "node-name": "PERISCOPE_NODE_NAME",
  "ops-addr": "PERISCOPE_OPS_ADDR",
  "log-level": "PERISCOPE_LOG_LEVEL",
  "queue-group": "PERISCOPE_ENRICHER_QUEUE_GROUP",
} as const satisfies CommonSettingNames;

/**
 * Parse flags (taking precedence) and environment into a frozen config.
 * Throws ConfigError naming the first bad option.
 */
export function loadConfig(
  argv: readonly string[] = process.argv.slice(2),
  env: Record<string, string | undefined> = process.env,
): Readonly<EnricherConfig> {
  const settings = readSettings(ENV_NAMES, argv, env, { flagField: "flag" });
  const common = parseCommonSettings(settings, { opsAddr: "127.0.0.1:9402" });
  const queueGroup = settings.get("queue-group") ?? "enrichers";
  if (!/^[A-Za-z0-9_-]+$/.test(queueGroup)) {
    throw new ConfigError("queue-group", `"${queueGroup}" may only hold letters, digits, _ and -`);
  }
  return Object.freeze({ ...common, queueGroup });
}
