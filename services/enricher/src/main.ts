/**
 * periscope enricher: decodes raw kernel records from every collector into
 * Hubble flows and publishes them on `periscope.flows.<node>`.
 */
import { announcePresence } from "@periscope/bus";
import { runService } from "@periscope/telemetry";
import { loadConfig } from "./config.ts";
import { startEnricher } from "./enricher.ts";

export { ConfigError, type EnricherConfig, loadConfig } from "./config.ts";
export { startEnricher } from "./enricher.ts";
export { processFrame } from "./frames.ts";

if (import.meta.main) {
  await runService({
    name: "enricher",
    loadConfig,
    start: startEnricher,
    companion: (config, log) =>
      announcePresence({ url: config.natsUrl, service: "enricher", node: config.nodeName, log }),
  });
}
