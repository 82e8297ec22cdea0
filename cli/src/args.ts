/** A command line that cannot be used; the CLI prints it and exits with code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** How one flag takes its value. */
export type FlagKind = "bool" | "string";

/** One accepted flag: long name without dashes, optional one-letter alias. */
export interface FlagSpec {
  readonly name: string;
  readonly short?: string;
  readonly kind: FlagKind;
  readonly help: string;
  /** Shown in help as `--name <value>`. */
  readonly value?: string;
}

/** One flag occurrence, in command-line order (order matters for `--not`). */
export interface FlagUse {
  readonly name: string;
  /** "true" for bool flags given without a value. */
  readonly value: string;
}

/** The parsed command line: flags in order plus positional arguments. */
export interface ParsedArgs {
  readonly flags: readonly FlagUse[];
  readonly positionals: readonly string[];
}

/**
 * Parses `argv` against `specs`: `--name value`, `--name=value`, `-x value`, `-xvalue`
 * (string flags), `--name`, `--name=false`, `-x` (bool flags); `--` ends flags.
 * Throws {@link UsageError} for unknown flags and missing values.
 */
export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[]): ParsedArgs {
  const flags: FlagUse[] = [];
  const positionals: string[] = [];
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.flatMap((s) => (s.short ? [[s.short, s] as const] : [])));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let spec: FlagSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      spec = byLong.get(name);
      if (!spec) throw new UsageError(`unknown flag: --${name}`);
    } else if (arg.startsWith("-") && arg.length > 1) {
      spec = byShort.get(arg.slice(1, 2));
      if (!spec) throw new UsageError(`unknown shorthand flag: '${arg.slice(1, 2)}' in ${arg}`);
      if (arg.length > 2) inline = arg.slice(2).replace(/^=/, "");
    } else {
      positionals.push(arg);
      continue;
    }
    if (spec.kind === "bool") {
      const value = inline ?? "true";
      if (value !== "true" && value !== "false") {
        throw new UsageError(
          `invalid argument "${value}" for --${spec.name}: expected true or false`,
        );
      }
      flags.push({ name: spec.name, value });
      continue;
    }
    let value = inline;
    if (value === undefined) {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined) throw new UsageError(`flag needs an argument: --${spec.name}`);
    flags.push({ name: spec.name, value });
  }
  return { flags, positionals };
}

/** The last value given for `name`, if any. */
export function lastValue(args: ParsedArgs, name: string): string | undefined {
  let v: string | undefined;
  for (const f of args.flags) if (f.name === name) v = f.value;
  return v;
}

/** True when bool flag `name` was given (and not as `=false`). */
export function isSet(args: ParsedArgs, name: string): boolean {
  return lastValue(args, name) === "true";
}

/** Parses a non-negative integer flag value. */
export function parseUint(name: string, value: string): bigint {
  if (!/^\d+$/.test(value)) {
    throw new UsageError(`invalid argument "${value}" for --${name}: not a non-negative integer`);
  }
  const n = BigInt(value);
  if (n > 0xffff_ffff_ffff_ffffn) throw new UsageError(`--${name} ${value} is too large`);
  return n;
}

/** Renders `specs` as indented help lines. */
export function flagHelp(specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const short = s.short ? `-${s.short}, ` : "    ";
    const value = s.kind === "string" ? ` <${s.value ?? "value"}>` : "";
    return [`  ${short}--${s.name}${value}`, s.help] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return rows.map(([l, h]) => `${l.padEnd(width)}${h}`).join("\n");
}
