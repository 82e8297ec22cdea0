/**
 * periscope-observer: Hubble-compatible observer.Observer API over the flows on the bus.
 * Listens only when run directly; tests import {@link startObserver} instead.
 */
import { announcePresence } from "@periscope/bus";
import { runService } from "@periscope/telemetry";
import { loadConfig } from "./config.ts";
import { startObserver } from "./server.ts";

export { type ObserverConfig, parseConfig } from "./config.ts";
export { type RunningObserver, type StartObserverOptions, startObserver } from "./server.ts";

if (import.meta.main) {
  await runService({
    name: "observer",
    loadConfig,
    start: (config, log) => startObserver(config, { log }),
    companion: (config, log) =>
      announcePresence({ url: config.natsUrl, service: "observer", node: config.nodeName, log }),
  });
}
