export {
  COMMON_SETTINGS,
  type CommonConfig,
  type CommonSetting,
  parseCommonConfig,
} from "./common.ts";
export { ConfigError } from "./errors.ts";
export { type HostPort, parseHostPort } from "./host-port.ts";
export { isLogLevel, LOG_LEVELS, type LogLevel } from "./log-level.ts";
export {
  POSITIONAL_FIELD,
  readServiceSettings,
  type ServiceSettings,
  type SettingEnvNames,
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
