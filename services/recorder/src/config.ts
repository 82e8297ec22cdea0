import {
  type CommonConfig,
  type CommonSettingNames,
  parseCommonSettings,
  readSettings,
} from "@periscope/config";

export { ConfigError } from "@periscope/config";

/** Recorder settings, parsed once at start-up: only the common ones (see `@periscope/config`). */
export type RecorderConfig = CommonConfig;

/** Flag name (without `--`) → environment variable. */
const ENV_NAMES = {
  "nats-url": "PERISCOPE_NATS_URL",
  "node-name": "PERISCOPE_NODE_NAME",
  "ops-addr": "PERISCOPE_OPS_ADDR",
  "log-level": "PERISCOPE_LOG_LEVEL",
} as const satisfies CommonSettingNames;

export const DEFAULT_OPS_ADDR = "127.0.0.1:9404";

/**
 * Parses flags (which win) and environment into a frozen config; throws
 * ConfigError whose `field` is the flag name without dashes (e.g. "ops-addr").
 */
export function parseConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): RecorderConfig {
  const settings = readSettings(ENV_NAMES, argv, env);
  return Object.freeze(parseCommonSettings(settings, { opsAddr: DEFAULT_OPS_ADDR }));
}

/** The config of this process (command line and environment). */
export function loadConfig(): RecorderConfig {
  return parseConfig(process.argv.slice(2), process.env);
}
