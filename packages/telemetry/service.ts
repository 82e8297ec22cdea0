import { createLogger, type Logger, type LogLevel } from "./logger.ts";

/** What {@link runService} needs from a service. */
export interface ServiceMain<C extends { readonly logLevel: LogLevel }> {
  /** Service name: the logger's `service` field and the prefix of startup errors. */
  readonly name: string;
  /** Parses flags and environment; a throw is a configuration error (exit 2). */
  readonly loadConfig: () => C;
  /** Starts the service; the returned stop() drains and closes everything it opened. */
  readonly start: (config: C, log: Logger) => Promise<{ stop(): Promise<void> }>;
}

/**
 * The process lifecycle every service shares: load the config (a bad value
 * prints `<name>: bad configuration: <field>: <problem>` on stderr and exits 2),
 * start, wait for SIGINT or SIGTERM, stop gracefully and exit 0. A failure to
 * start or stop exits 1; a second signal while stopping exits 1 at once.
 */
export async function runService<C extends { readonly logLevel: LogLevel }>(
  svc: ServiceMain<C>,
): Promise<never> {
  let config: C;
  try {
    config = svc.loadConfig();
  } catch (err) {
    process.stderr.write(
      `${svc.name}: bad configuration: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exit(2);
  }
  const log = createLogger(svc.name, config.logLevel);
  let running: { stop(): Promise<void> };
  try {
    running = await svc.start(config, log);
  } catch (err) {
    log.fatal({ err }, "failed to start");
    process.exit(1);
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  log.info({ signal }, "shutting down");
  const forced = (again: NodeJS.Signals): void => {
    log.warn({ signal: again }, "second signal while stopping; exiting now");
    process.exit(1);
  };
  process.once("SIGINT", forced);
  process.once("SIGTERM", forced);
  try {
    await running.stop();
  } catch (err) {
    log.error({ err }, "shutdown failed");
    process.exit(1);
  }
  log.info("stopped");
  process.exit(0);
}
