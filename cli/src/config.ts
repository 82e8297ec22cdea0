import { DEFAULT_NATS_URL } from "@periscope/bus";
import { DEFAULT_SERVER } from "./client.ts";

/** What the CLI takes from its environment. */
export interface CliEnv {
  /** `PERISCOPE_SERVER`, else localhost:4245. */
  readonly server: string;
  /** `PERISCOPE_NATS_URL`, else nats://127.0.0.1:4222 (used by `monitor`). */
  readonly natsUrl: string;
}

/** Reads the CLI's environment once. */
export function loadCliEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): CliEnv {
  const server = env.PERISCOPE_SERVER;
  const nats = env.PERISCOPE_NATS_URL;
  return Object.freeze({
    server: server && server !== "" ? server : DEFAULT_SERVER,
    natsUrl: nats && nats !== "" ? nats : DEFAULT_NATS_URL,
  });
}
