import { announcePresence, type Bus, connectBus } from "@periscope/bus";
import { createMetrics, type Logger, runService, startOpsServer } from "@periscope/telemetry";
import { loadConfig, type RecorderConfig } from "./config.ts";

/** A running recorder. */
export interface Recorder {
  /** Resolves once the ops server listens; `opsPort` is the bound port. */
  readonly opsPort: number;
  /** Stops the ops server and closes the NATS connection (and a local server it started). */
  stop(): Promise<void>;
}

const SERVICE = "recorder";
const RETRY_MS = 1000;

/**
 * Starts the recorder: ops server first (so /healthz answers at once), then NATS,
 * retried until it connects or the recorder stops. Ready once connected.
 */
export async function startRecorder(config: RecorderConfig, log: Logger): Promise<Recorder> {
  const metrics = createMetrics(SERVICE);
  const errors = metrics.counter("errors_total", "Errors by kind.", ["kind"]);
  const connected = metrics.gauge("nats_connected", "1 while connected to NATS.");
  let bus: Bus | undefined;
  let stopping = false;

  const ops = await startOpsServer({
    addr: config.opsAddr,
    registry: metrics.registry,
    ready: () => bus?.connected() ?? false,
    log,
  });

  const abort = new AbortController();
  const connecting = (async () => {
    while (!stopping) {
      try {
        const b = await connectBus({
          ...(config.natsUrl !== undefined ? { url: config.natsUrl } : {}),
          name: `${SERVICE}-${config.nodeName}`,
          // Gives up now and then so every failed round is counted (errors_total{kind="nats_connect"}).
          firstConnectTimeoutMs: 2000,
          signal: abort.signal,
          log,
        });
        if (stopping) {
          await b.close();
          return;
        }
        bus = b;
        return;
      } catch (err) {
        errors.inc({ kind: "nats_connect" });
        log.warn({ err }, `NATS not reachable; retrying in ${RETRY_MS} ms`);
        await Bun.sleep(RETRY_MS);
      }
    }
  })();
  const updateGauge = setInterval(() => connected.set(bus?.connected() ? 1 : 0), 1000);

  let stopped: Promise<void> | undefined;
  return {
    opsPort: ops.port,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        abort.abort();
        clearInterval(updateGauge);
        await connecting;
        await bus?.close();
        await ops.stop();
      })();
      return stopped;
    },
  };
}

if (import.meta.main) {
  await runService({
    name: SERVICE,
    loadConfig,
    start: (config, log) => {
      log.info(
        { node: config.nodeName, ops: config.opsAddr, nats: config.natsUrl ?? "default" },
        "starting",
      );
      return startRecorder(config, log);
    },
    companion: (config, log) =>
      announcePresence({ url: config.natsUrl, service: SERVICE, node: config.nodeName, log }),
  });
}
