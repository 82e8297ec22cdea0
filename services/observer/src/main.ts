/**
 * periscope-observer: Hubble-compatible observer.Observer API over the flows on the bus.
 * Listens only when run directly; tests import {@link startObserver} instead.
 */
import { createLogger } from "@periscope/telemetry";
import { ConfigError, loadConfig } from "./config.ts";
import { startObserver } from "./server.ts";

export { type ObserverConfig, parseConfig } from "./config.ts";
export { type RunningObserver, type StartObserverOptions, startObserver } from "./server.ts";

async function main(): Promise<number> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`periscope-observer: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = createLogger("observer", config.logLevel);
  const observer = await startObserver(config, { log });
  const stopped = Promise.withResolvers<void>();
  const onSignal = (signal: NodeJS.Signals): void => {
    log.info({ signal }, "shutting down");
    observer.stop().then(stopped.resolve, stopped.reject);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  await stopped.promise;
  log.info("observer stopped");
  return 0;
}

if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(
        `periscope-observer: ${err instanceof Error ? err.stack : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}
