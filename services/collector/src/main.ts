/**
 * periscope collector: drains the kernel trace ring buffer and publishes RawFrames on
 * `periscope.raw.<node>.<partition>`. Configuration: see config.ts (flags and PERISCOPE_* env).
 */
import { createLogger } from "@periscope/telemetry";
import { startCollector } from "./collector.ts";
import { ConfigError, loadConfig } from "./config.ts";

async function main(): Promise<number> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      createLogger("collector").fatal({ err, field: err.field }, "bad configuration");
      return 2;
    }
    throw err;
  }
  const log = createLogger("collector", config.logLevel);
  const collector = await startCollector(config, { log });
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ signal }, "shutting down");
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      resolve();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  await collector.stop();
  return 0;
}

if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      createLogger("collector").fatal({ err }, "collector failed");
      process.exit(1);
    },
  );
}
