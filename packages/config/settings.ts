import { parseArgs } from "node:util";
import { COMMON_SETTINGS, type CommonSetting } from "./common.ts";
import { ConfigError } from "./errors.ts";
import { parseInteger } from "./validate.ts";

/** Setting names (the flag without `--`, e.g. `max-flows`) mapped to their environment variables. */
export type SettingEnvNames = Readonly<Record<string, string>>;

/** Field of errors about command-line arguments that are not flags. */
export const POSITIONAL_FIELD = "argv";

/** A service's raw setting values from flags and environment, before any validation. */
export interface ServiceSettings<S extends string> {
  /** The flag's value if given, else the environment's; an empty string counts as unset. */
  get(setting: S): string | undefined;
  /**
   * Where {@link get} looked last: `--<setting>` when the flag was given, else the
   * variable's name. Every ConfigError about a value names this as its field.
   */
  source(setting: S): string;
  /** The setting as an integer in `min..max`, `fallback` when unset; ConfigError naming its source. */
  integer(setting: S, fallback: number, min: number, max: number): number;
}

/**
 * Reads a service's settings: the common ones ({@link COMMON_SETTINGS}: NATS URL, node
 * name, ops address, log level), declared once here, plus `own`. Flags (`--name value` or
 * `--name=value`, parsed by node:util parseArgs) win over the `PERISCOPE_*` environment.
 * Throws {@link ConfigError} for an unknown flag (field: the flag as given), a flag without
 * its value (field: the flag) or an argument that is not a flag (field {@link POSITIONAL_FIELD}).
 */
export function readServiceSettings<const T extends SettingEnvNames>(
  own: T,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ServiceSettings<CommonSetting | (keyof T & string)> {
  type S = CommonSetting | (keyof T & string);
  for (const name of Object.keys(own)) {
    if (Object.hasOwn(COMMON_SETTINGS, name)) {
      throw new TypeError(`setting "${name}" is common; do not declare it again`);
    }
  }
  const names: Readonly<Record<S, string>> = { ...COMMON_SETTINGS, ...own };
  const isSetting = (name: string): name is S => Object.hasOwn(names, name);
  const { tokens } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(Object.keys(names).map((n) => [n, { type: "string" as const }])),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const flags = new Map<S, string>();
  for (const token of tokens) {
    if (token.kind === "positional") {
      throw new ConfigError(POSITIONAL_FIELD, `unexpected argument "${token.value}"`);
    }
    if (token.kind !== "option") continue;
    if (!isSetting(token.name)) {
      throw new ConfigError(token.rawName, `unknown flag "${token.rawName}"`);
    }
    if (token.value === undefined) throw new ConfigError(`--${token.name}`, "flag needs a value");
    flags.set(token.name, token.value);
  }
  const settings: ServiceSettings<S> = {
    get(setting) {
      const value = flags.get(setting) ?? env[names[setting]];
      return value === "" ? undefined : value;
    },
    source(setting) {
      return flags.has(setting) ? `--${setting}` : names[setting];
    },
    integer(setting, fallback, min, max) {
      const raw = settings.get(setting);
      return raw === undefined ? fallback : parseInteger(settings.source(setting), raw, min, max);
    },
  };
  return settings;
}
