import { loadConfig } from "./config.ts";
import { startEnricher } from "./enricher.ts";

export { ConfigError, type EnricherConfig, loadConfig } from "./config.ts";
export { startEnricher } from "./enricher.ts";
export { processFrame } from "./frames.ts";

if (import.meta.main) {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    console.error(`periscope-enricher: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  }
  const running = await startEnricher(config);
  const shutdown = async (): Promise<void> => {
    await running.stop();
    process.exit(0);
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}
