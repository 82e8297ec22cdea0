import { type CommonConfig, parseCommonConfig, readServiceSettings } from "@periscope/config";

export { ConfigError } from "@periscope/config";

/** Recorder settings, parsed once at start-up: only the common ones (see `@periscope/config`). */
export type RecorderConfig = CommonConfig;

/**
 * The recorder's own settings, flag name (without `--`) → environment variable: none yet.
 * The common ones (PERISCOPE_NATS_URL, PERISCOPE_NODE_NAME, PERISCOPE_OPS_ADDR,
 * PERISCOPE_LOG_LEVEL) come from `@periscope/config`.
 */
const OWN_SETTINGS = {} as const;

export const DEFAULT_OPS_ADDR = "127.0.0.1:9404";

/**
 * Parses flags (which win) and environment into a frozen config; throws ConfigError
 * whose `field` is where the bad value came from (`--ops-addr` or `PERISCOPE_OPS_ADDR`).
 */
export function parseConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): RecorderConfig {
  const settings = readServiceSettings(OWN_SETTINGS, argv, env);
  return Object.freeze(parseCommonConfig(settings, DEFAULT_OPS_ADDR));
}

/** The config of this process (command line and environment). */
export function loadConfig(): RecorderConfig {
  return parseConfig(process.argv.slice(2), process.env);
}
