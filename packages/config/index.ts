export {
  COMMON_SETTINGS,
  type CommonConfig,
  type CommonOptions,
  type CommonSetting,
  type CommonSettingNames,
  parseCommonConfig,
  parseCommonSettings,
} from "./common.ts";
export { ConfigError } from "./errors.ts";
export { type HostPort, parseHostPort } from "./host-port.ts";
export { isLogLevel, LOG_LEVELS, type LogLevel } from "./log-level.ts";
export {
  POSITIONAL_FIELD,
  readServiceSettings,
  type ServiceSettings,
} from "./service-settings.ts";
export {
  type ReadSettingsOptions,
  readSettings,
  type SettingEnvNames,
  type Settings,
} from "./settings.ts";
export {
  checkHostPort,
  checkNatsUrl,
  type HostPortOptions,
  parseInteger,
  parseLogLevel,
  parsePositiveInteger,
  resolveNodeName,
} from "./validate.ts";
