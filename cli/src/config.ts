import { DEFAULT_SERVER } from "./client.ts";

/** What the CLI takes from its environment. */
export interface CliEnv {
  /** `PERISCOPE_SERVER`, else localhost:4245. */
  readonly server: string;
}

/** Reads the CLI's environment once. */
export function loadCliEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): CliEnv {
  const server = env.PERISCOPE_SERVER;
  return Object.freeze({ server: server && server !== "" ? server : DEFAULT_SERVER });
}
