/**
 * A configuration value that cannot be used. `field` names the setting the way the
 * service reports it (e.g. `ops-addr`, `--max-flows` or `PERISCOPE_MAX_FLOWS`); the
 * message is `<field>: <problem>`.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly field: string,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${problem}`, options);
  }
}
