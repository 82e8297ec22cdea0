export {
  COMMON_SETTINGS,
  type CommonConfig,
  type CommonOptions,
  type CommonSetting,
  type CommonSettingNames,
  parseCommonSettings,
} from "./common.ts";
export { ConfigError } from "./errors.ts";
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
