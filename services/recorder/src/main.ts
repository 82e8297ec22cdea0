import { mkdir } from "node:fs/promises";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  announcePresence,
  type Bus,
  connectBus,
  PRESENCE_INTERVAL_MS,
  type PresenceWatch,
  watchPresence,
} from "@periscope/bus";
import { parseHostPort } from "@periscope/config";
import { createMetrics, type Logger, runService, startOpsServer } from "@periscope/telemetry";
import { loadConfig, type RecorderConfig } from "./config.ts";
import { recorderRoutes } from "./service.ts";
import { RecordingSession } from "./session.ts";

/** A running recorder. */
export interface Recorder {
  /** Resolves once the ops server listens; `opsPort` is the bound port. */
  readonly opsPort: number;
  /** Port of the recorder.Recorder API. */
  readonly listenPort: number;
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
  const lost = metrics.counter(
    "packets_lost_total",
    "Recorded packets lost, by where: collector (kernel ring or publish), transport (NATS), write_queue, write.",
    ["where"],
  );
  const active = metrics.gauge("recordings_active", "Recordings running now.");
  active.set(0);
  let bus: Bus | undefined;
  let presence: PresenceWatch | undefined;
  let presenceSince = 0;
  let stopping = false;
  await mkdir(config.storageDir, { recursive: true });

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
        presence = watchPresence(b.nc, { log });
        presenceSince = performance.now();
        return;
      } catch (err) {
        errors.inc({ kind: "nats_connect" });
        log.warn({ err }, `NATS not reachable; retrying in ${RETRY_MS} ms`);
        await Bun.sleep(RETRY_MS);
      }
    }
  })();
  const updateGauge = setInterval(() => connected.set(bus?.connected() ? 1 : 0), 1000);

  const shutdown = new AbortController();
  const sessions = new Set<RecordingSession>();
  const liveCollectors = (): string[] => [
    ...new Set(
      (presence?.live() ?? []).filter((b) => b.service === "collector").map((b) => b.node),
    ),
  ];
  const handler = connectNodeAdapter({
    routes: recorderRoutes({
      nodeName: config.nodeName,
      log,
      shutdown: shutdown.signal,
      startSession: async (plan, onStop) => {
        const b = bus;
        if (b === undefined || !b.connected()) {
          throw new ConnectError("recorder is not connected to NATS", Code.Unavailable);
        }
        const session = await RecordingSession.start(
          plan,
          {
            nc: b.nc,
            nodes: liveCollectors,
            // Every live collector beats within its interval: wait that long after watching began.
            nodesSettled: async () => {
              const wait = presenceSince + PRESENCE_INTERVAL_MS * 1.5 - performance.now();
              if (wait > 0) await Bun.sleep(wait);
            },
            storageDir: config.storageDir,
            leaseMs: config.leaseMs,
            writeQueuePackets: config.writeQueuePackets,
            log,
            onLost: (where, n) => lost.inc({ where }, n),
          },
          (reason) => onStop(reason),
        );
        sessions.add(session);
        active.set(sessions.size);
        void session.whenStopped().then(() => {
          sessions.delete(session);
          active.set(sessions.size);
        });
        return session;
      },
    }),
    grpc: true,
    grpcWeb: true,
    connect: true,
  });
  // HTTP/2 cleartext (gRPC, Connect and gRPC-Web clients with prior knowledge); HTTP/1.1
  // clients (curl) reach the same API through the observer's address.
  const server = http2.createServer(handler);
  const sessions2 = new Set<http2.ServerHttp2Session>();
  server.on("session", (s: http2.ServerHttp2Session) => {
    sessions2.add(s);
    s.on("close", () => sessions2.delete(s));
  });
  try {
    const { host, port } = parseHostPort(config.listenAddr);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    clearInterval(updateGauge);
    stopping = true;
    abort.abort();
    await connecting;
    await bus?.close();
    await ops.stop();
    throw err;
  }
  const listenPort = (server.address() as AddressInfo).port;
  log.info({ listen: listenPort, storage: config.storageDir }, "recorder API listening");

  let stopped: Promise<void> | undefined;
  return {
    opsPort: ops.port,
    listenPort,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        shutdown.abort();
        await Promise.allSettled([...sessions].map((s) => s.stop("shutdown")));
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const s of sessions2) s.close();
          setTimeout(() => {
            for (const s of sessions2) s.destroy();
          }, 2000).unref();
        });
        await presence?.stop();
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
