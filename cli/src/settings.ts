/**
 * CLI settings as hubble keeps them: each flag also comes from a `PERISCOPE_<FLAG>`
 * variable and from a YAML config file (`--config`, `PERISCOPE_CONFIG`, default
 * `$XDG_CONFIG_HOME/periscope/config.yaml` or `~/.config/periscope/config.yaml`), in that
 * order of precedence: flag, environment, file, default.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { UsageError } from "./args.ts";
import { parseDurationMs } from "./time.ts";

type Yaml = typeof import("yaml");
let yamlModule: Yaml | undefined;

/** The YAML library, loaded on first use (most runs read no config file). */
function yaml(): Yaml {
  yamlModule ??= require("yaml") as Yaml;
  return yamlModule;
}

/** One setting: its kind and default. */
interface SettingSpec {
  readonly kind: "string" | "bool" | "duration" | "list";
  readonly default: string | boolean | readonly string[];
}

/** Every setting the config file and `config` command know (hubble's keys). */
export const SETTINGS: Readonly<Record<string, SettingSpec>> = {
  server: { kind: "string", default: "localhost:4245" },
  timeout: { kind: "duration", default: "5s" },
  "request-timeout": { kind: "duration", default: "12s" },
  tls: { kind: "bool", default: false },
  "tls-allow-insecure": { kind: "bool", default: false },
  "tls-ca-cert-files": { kind: "list", default: [] },
  "tls-client-cert-file": { kind: "string", default: "" },
  "tls-client-key-file": { kind: "string", default: "" },
  "tls-server-name": { kind: "string", default: "" },
  "basic-auth-username": { kind: "string", default: "" },
  "basic-auth-password": { kind: "string", default: "" },
  "bearer-token": { kind: "string", default: "" },
  "nats-url": { kind: "string", default: "nats://127.0.0.1:4222" },
  debug: { kind: "bool", default: false },
};

/** `PERISCOPE_TLS_CA_CERT_FILES` for `tls-ca-cert-files`. */
export function envName(key: string): string {
  return `PERISCOPE_${key.toUpperCase().replaceAll("-", "_")}`;
}

type Env = Readonly<Record<string, string | undefined>>;

/** The default config file for `env` (XDG_CONFIG_HOME, else HOME/.config). */
export function defaultConfigPath(env: Env): string {
  const base =
    env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== ""
      ? env.XDG_CONFIG_HOME
      : join(env.HOME && env.HOME !== "" ? env.HOME : homedir(), ".config");
  return join(base, "periscope", "config.yaml");
}

/** The key named `key`, or a usage error listing the known keys. */
function spec(key: string): SettingSpec {
  const s = Object.hasOwn(SETTINGS, key) ? SETTINGS[key] : undefined;
  if (!s)
    throw new UsageError(
      `unknown config key "${key}" (known: ${Object.keys(SETTINGS).join(", ")})`,
    );
  return s;
}

/** A config file's settings; a missing file is empty, a malformed one a usage error. */
export function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) return {};
  let doc: unknown;
  try {
    doc = yaml().parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new UsageError(`config file ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc))
    throw new UsageError(`config file ${path}: expected a mapping of settings`);
  return doc as Record<string, unknown>;
}

/** A setting's value as the environment spells it (lists comma-joined). */
function asEnvText(v: unknown): string {
  return Array.isArray(v) ? v.map(String).join(",") : String(v);
}

/**
 * The environment commands read settings from: `env` over the config file's settings
 * (as `PERISCOPE_*` variables). Unknown keys in the file are ignored.
 */
export function settingsEnv(
  configPath: string | undefined,
  env: Env,
): Record<string, string | undefined> {
  const fromFile: Record<string, string> = {};
  if (configPath !== undefined) {
    for (const [k, v] of Object.entries(readConfigFile(configPath))) {
      if (Object.hasOwn(SETTINGS, k) && v !== null && v !== undefined)
        fromFile[envName(k)] = asEnvText(v);
    }
  }
  return { ...fromFile, ...env };
}

/**
 * `allowlist`/`denylist` of a config file (what `observe --print-raw-filters` prints), as
 * extra `--allowlist`/`--denylist` arguments for `observe` when its command line gives none
 * of that kind (a flag replaces the file's list, as in hubble).
 */
export function configRawFilterArgs(
  configPath: string | undefined,
  argv: readonly string[],
): string[] {
  if (configPath === undefined) return [];
  const doc = readConfigFile(configPath);
  const out: string[] = [];
  for (const key of ["allowlist", "denylist"]) {
    const list = doc[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list) || list.some((v) => typeof v !== "string"))
      throw new UsageError(
        `config file ${configPath}: ${key} must be a list of JSON filter strings`,
      );
    if (argv.some((a) => a === `--${key}` || a.startsWith(`--${key}=`))) continue;
    for (const v of list) out.push(`--${key}`, v as string);
  }
  return out;
}

/** Global flags taken out of argv wherever they stand (up to `--`). */
export interface GlobalArgs {
  readonly argv: string[];
  /** --config */
  readonly config?: string;
  readonly timeout?: string;
  readonly requestTimeout?: string;
}

/** Takes `--config`, `--timeout` and `--request-timeout` out of `argv`. */
export function extractGlobalArgs(argv: readonly string[]): GlobalArgs {
  const rest: string[] = [];
  const found: Record<string, string> = {};
  const names = ["config", "timeout", "request-timeout"];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") ? arg.slice(2, eq >= 0 ? eq : undefined) : "";
    if (!names.includes(name)) {
      rest.push(arg);
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`flag needs an argument: --${name}`);
    found[name] = value;
  }
  return {
    argv: rest,
    ...(found.config !== undefined ? { config: found.config } : {}),
    ...(found.timeout !== undefined ? { timeout: found.timeout } : {}),
    ...(found["request-timeout"] !== undefined ? { requestTimeout: found["request-timeout"] } : {}),
  };
}

/** A duration setting in milliseconds (flag value, else env/file, else default). */
export function durationSetting(key: string, flag: string | undefined, env: Env): number {
  const text = flag ?? env[envName(key)] ?? String(spec(key).default);
  const ms = parseDurationMs(text);
  if (ms === undefined || ms < 0)
    throw new UsageError(`invalid --${key} "${text}": expected a duration like 5s, 1m`);
  return ms;
}

/** Every setting's effective value (env/file over defaults), for `config view`. */
export function effectiveSettings(env: Env): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(SETTINGS)) {
    const v = env[envName(key)];
    if (v === undefined || v === "") out[key] = s.default;
    else if (s.kind === "bool") out[key] = /^(true|1)$/i.test(v);
    else if (s.kind === "list") out[key] = v.split(",").filter((x) => x !== "");
    else out[key] = v;
  }
  return out;
}

/** Checks and converts a `config set` value for `key`. */
export function settingValue(key: string, text: string): unknown {
  const s = spec(key);
  switch (s.kind) {
    case "bool":
      if (/^(true|1)$/i.test(text)) return true;
      if (/^(false|0)$/i.test(text)) return false;
      throw new UsageError(`invalid value "${text}" for ${key}: expected true or false`);
    case "duration":
      if (parseDurationMs(text) === undefined)
        throw new UsageError(`invalid value "${text}" for ${key}: expected a duration like 5s`);
      return text;
    case "list":
      return text
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== "");
    default:
      return text;
  }
}

/** `config` sub-commands: view, get KEY, set KEY VALUE, reset [KEY]. Returns the exit code. */
export function runConfig(
  args: readonly string[],
  configPath: string,
  env: Env,
  out: (line: string) => void,
): number {
  const [sub, key, value, ...extra] = args;
  const write = (doc: Record<string, unknown>) => {
    mkdirSync(dirname(configPath), { recursive: true });
    writeFileSync(configPath, Object.keys(doc).length === 0 ? "" : yaml().stringify(doc), {
      mode: 0o600,
    });
  };
  switch (sub) {
    case "view":
      if (key !== undefined) throw new UsageError(`unexpected argument "${key}"`);
      out(yaml().stringify(effectiveSettings(env)).trimEnd());
      return 0;
    case "get": {
      if (key === undefined || value !== undefined)
        throw new UsageError("config get takes one KEY");
      spec(key);
      const v = effectiveSettings(env)[key];
      out(Array.isArray(v) ? v.join(",") : String(v));
      return 0;
    }
    case "set": {
      if (key === undefined || value === undefined || extra.length > 0)
        throw new UsageError("config set takes KEY VALUE");
      const doc = readConfigFile(configPath);
      doc[key] = settingValue(key, value);
      write(doc);
      return 0;
    }
    case "reset": {
      if (value !== undefined) throw new UsageError("config reset takes at most one KEY");
      const doc = readConfigFile(configPath);
      if (key === undefined) write({});
      else {
        spec(key);
        delete doc[key];
        write(doc);
      }
      return 0;
    }
    default:
      throw new UsageError(
        `unknown config command "${sub ?? ""}" (expected view, get KEY, set KEY VALUE or reset [KEY])`,
      );
  }
}
