import { createLogger, type Logger, type LogLevel } from "./logger.ts";

/** Default for {@link ServiceMain.stopDeadlineMs}: far above any normal graceful stop. */
export const DEFAULT_STOP_DEADLINE_MS = 30_000;

/** What {@link runService} needs from a service. */
export interface ServiceMain<C extends { readonly logLevel: LogLevel }> {
  /** Service name: the logger's `service` field and the prefix of startup errors. */
  readonly name: string;
  /** Parses flags and environment; a throw is a configuration error (exit 2). */
  readonly loadConfig: () => C;
  /** Starts the service; the returned stop() drains and closes everything it opened. */
  readonly start: (config: C, log: Logger) => Promise<{ stop(): Promise<void> }>;
  /**
   * Started once the service has started and stopped just before it stops: something
   * that runs beside the service, such as its presence heartbeat.
   */
  readonly companion?: (config: C, log: Logger) => { stop(): Promise<void> };
  /**
   * How long a graceful stop may take before the process exits 1 anyway, ms (default
   * {@link DEFAULT_STOP_DEADLINE_MS}). Only a stop that hangs reaches it: further signals
   * never cut a stop short, so kernel cleanup (detaching programs) always runs first.
   */
  readonly stopDeadlineMs?: number;
}

const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;
/** A companion gets this long to stop before the service's own stop begins anyway, ms. */
const COMPANION_STOP_MS = 1000;

/** Stops the companion without letting it fail or delay the service's own stop. */
async function stopCompanion(c: { stop(): Promise<void> }, log: Logger): Promise<void> {
  const stopped = c.stop().catch((err: unknown) => log.warn({ err }, "companion stop failed"));
  await Promise.race([stopped, Bun.sleep(COMPANION_STOP_MS)]);
}

/**
 * The process lifecycle every service shares: load the config (a bad value
 * prints `<name>: bad configuration: <field>: <problem>` on stderr and exits 2),
 * start, wait for SIGINT or SIGTERM, stop gracefully and exit 0. A failure to
 * start or stop exits 1. Signals that arrive while stopping are logged and ignored
 * (a terminal's Ctrl-C and a supervisor's SIGTERM often arrive together); a stop that
 * outlives `stopDeadlineMs` exits 1.
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
  const deadlineMs = svc.stopDeadlineMs ?? DEFAULT_STOP_DEADLINE_MS;
  let first: NodeJS.Signals | undefined;
  let stopNow: (signal: NodeJS.Signals) => void = () => {};
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    stopNow = resolve;
  });
  let deadline: ReturnType<typeof setTimeout> | undefined;
  // Listening before start: a signal during a slow start leads to a full stop once started.
  const onSignal = (signal: NodeJS.Signals): void => {
    if (first !== undefined) {
      log.warn({ signal }, "signal while stopping; the stop in progress continues");
      return;
    }
    first = signal;
    deadline = setTimeout(() => {
      log.error({ deadlineMs }, "graceful stop did not finish in time; exiting");
      process.exit(1);
    }, deadlineMs);
    stopNow(signal);
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  let running: { stop(): Promise<void> };
  try {
    running = await svc.start(config, log);
  } catch (err) {
    log.fatal({ err }, "failed to start");
    process.exit(1);
  }
  // Not when a signal came during start: the service is about to stop anyway.
  const companion = first === undefined ? svc.companion?.(config, log) : undefined;
  const signal = await signalled;
  log.info({ signal }, "shutting down");
  try {
    if (companion) await stopCompanion(companion, log);
    await running.stop();
  } catch (err) {
    log.error({ err }, "shutdown failed");
    process.exit(1);
  }
  clearTimeout(deadline);
  log.info("stopped");
  process.exit(0);
}
