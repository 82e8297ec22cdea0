/**
 * periscope collector: drains the kernel trace ring buffer and publishes RawFrames on
 * `periscope.raw.<node>.<partition>`. Configuration: see config.ts (flags and PERISCOPE_* env).
 */
import { announcePresence } from "@periscope/bus";
import { runService } from "@periscope/telemetry";
import pkg from "../package.json" with { type: "json" };
import { startCollector } from "./collector.ts";
import { loadConfig } from "./config.ts";

if (import.meta.main) {
  await runService({
    name: "collector",
    loadConfig,
    start: (config, log) => startCollector(config, { log }),
    companion: (config, log) =>
      announcePresence({
        url: config.natsUrl,
        service: "collector",
        node: config.nodeName,
        version: `periscope ${pkg.version}`,
        log,
      }),
  });
}
