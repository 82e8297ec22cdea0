import { ConfigError } from "./errors.ts";

/** Setting names (the flag without `--`, e.g. `ops-addr`) mapped to their environment variables. */
export type SettingEnvNames = Readonly<Record<string, string>>;

/** How {@link readSettings} names the field of errors about the command line. */
export interface ReadSettingsOptions {
  /** `"name"` (default) reports a bad flag as `ops-addr`, `"flag"` as `--ops-addr`. */
  readonly flagField?: "name" | "flag";
  /** Field reported for an argument that is not a flag; default: the argument itself. */
  readonly positionalField?: string;
  /** Trim values; one that is only white space then counts as unset. Default false. */
  readonly trim?: boolean;
}

/** Raw setting values from flags and environment, before any validation. */
export interface Settings<S extends string> {
  /** The flag's value if given, else the environment's; an empty string counts as unset. */
  get(setting: S): string | undefined;
  /** Where {@link get} looked last: `--<setting>` when the flag was given, else the variable's name. */
  source(setting: S): string;
}

/**
 * Reads `--name value` and `--name=value` flags for the known settings and merges them
 * with the `PERISCOPE_*` environment; flags win. Throws {@link ConfigError} for a flag
 * that is not a setting, a flag without its value, or an argument that is not a flag.
 */
export function readSettings<const T extends SettingEnvNames>(
  names: T,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  options: ReadSettingsOptions = {},
): Settings<keyof T & string> {
  type S = keyof T & string;
  const isSetting = (name: string): name is S => Object.hasOwn(names, name);
  const fieldOf = (name: string): string => (options.flagField === "flag" ? `--${name}` : name);
  const envNames: Readonly<Record<S, string>> = names;
  const flags = new Map<S, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (!arg.startsWith("--")) {
      throw new ConfigError(options.positionalField ?? arg, `unexpected argument "${arg}"`);
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (!isSetting(name)) throw new ConfigError(fieldOf(name), `unknown flag "--${name}"`);
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      i++;
      value = argv[i];
    }
    if (value === undefined) throw new ConfigError(fieldOf(name), "flag needs a value");
    flags.set(name, value);
  }
  return {
    get(setting) {
      const raw = flags.get(setting) ?? env[envNames[setting]];
      const value = options.trim ? raw?.trim() : raw;
      return value === "" ? undefined : value;
    },
    source(setting) {
      return flags.has(setting) ? `--${setting}` : envNames[setting];
    },
  };
}
