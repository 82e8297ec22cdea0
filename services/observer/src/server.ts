import type * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { createRegistry } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type Bus, connectBus, sanitizeToken, watchPresence } from "@periscope/bus";
import { parseHostPort } from "@periscope/config";
import { onCelEvaluationError } from "@periscope/flow";
import {
  type GetAgentEventsResponse,
  type GetDebugEventsResponse,
  processV1,
  telemetryV1,
} from "@periscope/proto";
import {
  createLogger,
  createMetrics,
  type Logger,
  type OpsServer,
  startOpsServer,
} from "@periscope/telemetry";
import pkg from "../package.json" with { type: "json" };
import {
  Authenticator,
  authInterceptor,
  createAuthFailures,
  loadCredentials,
  loadServerTls,
} from "./access.ts";
import { startAgentIngest } from "./agent-ingest.ts";
import type { ObserverConfig } from "./config.ts";
import { type FastStreamDeps, isGrpcGetFlows, serveGrpcGetFlows } from "./fast-stream.ts";
import { serveWebGetFlows, webGetFlowsProtocol } from "./fast-web-stream.ts";
import { FlowStats } from "./flow-stats.ts";
import { flowStatsRoutes, startFlowStatsSource } from "./flow-stats-source.ts";
import { specGrpcMessages } from "./grpc-message.ts";
import { healthRoutes } from "./health.ts";
import { type Ingest, startIngest } from "./ingest.ts";
import { listenDual, unixSocketPath } from "./listen.ts";
import {
  createObserverMetrics,
  metricsInterceptor,
  type ObserverMetrics,
  streamLimitInterceptor,
} from "./metrics.ts";
import type { ObserverDeps } from "./observer.ts";
import { REQUIRED_SERVICES } from "./presence.ts";
import { recorderProxyRoutes } from "./recorder-proxy.ts";
import { reflectionRoutes } from "./reflection.ts";
import { guardRequest } from "./request-guard.ts";
import { observerRoutes } from "./routes.ts";
import { EventLog } from "./side-events.ts";
import { FlowStore } from "./store.ts";
import { StreamSlots } from "./stream-slots.ts";
import { createTelemetryService, TelemetryHub } from "./telemetry.ts";
import { startTelemetrySources } from "./telemetry-source.ts";
import { uiStatic } from "./ui-static.ts";

/** "periscope 0.1.0" — what ServerStatus reports as version. */
export const OBSERVER_VERSION = `periscope ${pkg.version}`;

/** Response header carrying the server's version (semver), as Hubble servers send it. */
export const SERVER_VERSION_HEADER = "hubble-server-version";

/** Options for {@link startObserver}. */
export interface StartObserverOptions {
  /** Defaults to a pino logger at `config.logLevel`. */
  log?: Logger;
  /** Skip the ops server (/metrics, /healthz, /readyz). Default false. */
  noOps?: boolean;
  /** Grace period for open RPCs on stop before connections are destroyed, ms. Default 2000. */
  shutdownGraceMs?: number;
  /** Built web UI served at `/` and `/assets/*`. Default ui/dist of the repository. */
  uiDir?: string;
}

/** A running observer. */
export interface RunningObserver {
  /** Bound gRPC/Connect port (useful when the config asked for port 0). */
  readonly port: number;
  readonly host: string;
  /** `http://host:port` (`https://` with TLS, `unix:///path` on a socket) — base URL for clients. */
  readonly url: string;
  /** Bound ops port, undefined with `noOps`. */
  readonly opsPort: number | undefined;
  readonly store: FlowStore;
  readonly metrics: ObserverMetrics;
  readonly bus: Bus;
  /** Ends follow streams, closes connections, the bus and the ops server. Safe twice. */
  stop(): Promise<void>;
}

/**
 * Starts the observer: bus subscription on `periscope.flows.>`, the Observer API over
 * HTTP/2 cleartext (gRPC, gRPC-Web, Connect) and HTTP/1.1 (gRPC-Web, Connect) on
 * `config.listenAddr`, and the ops server.
 */
export async function startObserver(
  config: ObserverConfig,
  opts: StartObserverOptions = {},
): Promise<RunningObserver> {
  const log = opts.log ?? createLogger("observer", config.logLevel);
  const telemetry = createMetrics("observer");
  const metrics = createObserverMetrics(telemetry);
  const store = new FlowStore({ maxFlows: config.maxFlows });
  // Access files are read before anything starts: a bad one stops the start, naming it.
  const serverTls =
    config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined
      ? loadServerTls({
          certFile: config.tlsCertFile,
          keyFile: config.tlsKeyFile,
          clientCaFiles: config.tlsClientCaFiles ?? [],
        })
      : undefined;
  const credentials = loadCredentials(config.basicAuthFile, config.bearerTokenFile);

  const bus = await connectBus({
    ...(config.natsUrl !== undefined ? { url: config.natsUrl } : {}),
    name: `periscope-observer-${config.nodeName}`,
    log,
  });
  const cleanups: (() => Promise<void>)[] = [() => bus.close()];
  const stopCelErrors = onCelEvaluationError(() => metrics.errors.inc({ kind: "cel_evaluation" }));
  cleanups.push(async () => stopCelErrors());
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        log.error({ err }, "observer shutdown step failed");
      }
    }
  };

  try {
    const agentEvents = new EventLog<GetAgentEventsResponse>();
    const debugEvents = new EventLog<GetDebugEventsResponse>();
    const agentIngest = await startAgentIngest({ bus, log, metrics, events: agentEvents });
    cleanups.push(() => agentIngest.stop());
    const ingest: Ingest = await startIngest({
      debugEvents,
      bus,
      durable: `observer-${sanitizeToken(config.nodeName)}`,
      store,
      log,
      metrics,
      sortBufferMs: config.sortBufferMs,
      historySinceSec: config.historySinceSec,
    });
    cleanups.push(() => ingest.stop());
    const telemetryHub = new TelemetryHub(config.nodeName);
    const telemetrySources = startTelemetrySources({
      bus,
      hub: telemetryHub,
      log,
      onError: (kind) => metrics.errors.inc({ kind }),
    });
    cleanups.push(() => telemetrySources.stop());
    // Bytes and packets per connection from the collectors' flow records (if they export them).
    const flowStats = new FlowStats();
    const flowStatsSource = await startFlowStatsSource({
      bus,
      stats: flowStats,
      log,
      metrics: telemetry,
    });
    cleanups.push(() => flowStatsSource.stop());
    const subscriptions = telemetry.gauge(
      "telemetry_subscriptions",
      "Open Telemetry/Subscribe streams.",
    );
    telemetryHub.onChange(() => subscriptions.set(telemetryHub.size));
    const presence = watchPresence(bus.nc, { required: REQUIRED_SERVICES, log });
    cleanups.push(() => presence.stop());

    const stopping = new AbortController();
    const observerDeps: ObserverDeps = {
      store,
      nodeName: config.nodeName,
      version: OBSERVER_VERSION,
      metrics,
      log,
      presence,
      maxFilters: config.maxFilters,
      agentEvents,
      debugEvents,
    };
    const observer = observerRoutes(observerDeps);
    const slots = new StreamSlots(config.maxConcurrentStreams);
    const auth = credentials
      ? Object.assign(new Authenticator(credentials), { failures: createAuthFailures(telemetry) })
      : undefined;
    const fastDeps: FastStreamDeps = {
      observer: observerDeps,
      metrics,
      slots,
      maxRequestBytes: config.maxRequestBytes,
      auth,
    };
    const health = healthRoutes(() => bus.connected(), stopping.signal);
    const handler = connectNodeAdapter({
      routes: (router) => {
        observer(router);
        router.service(telemetryV1.Telemetry, createTelemetryService(telemetryHub));
        recorderProxyRoutes(config.recorderAddr)(router);
        flowStatsRoutes(flowStats)(router);
        health(router);
        reflectionRoutes()(router); // last: it describes the services registered before it
      },
      interceptors: [
        metricsInterceptor(metrics),
        ...(auth ? [authInterceptor(auth, auth.failures)] : []),
        streamLimitInterceptor(slots, metrics),
      ],
      grpc: true,
      grpcWeb: true,
      connect: true,
      // JSON clients (Connect, gRPC-Web) get flows' extensions (periscope.process.v1.Process) unpacked.
      jsonOptions: { registry: createRegistry(processV1.file_periscope_process_v1_process) },
      // Requests larger than this end with ResourceExhausted before they are buffered.
      readMaxBytes: config.maxRequestBytes,
    });
    // The web UI (page and assets) on the API's origin; other requests go to the API.
    const ui = uiStatic({
      ...(opts.uiDir !== undefined ? { dir: opts.uiDir } : {}),
      onRequest: (outcome) => {
        if (outcome === "bad_path" || outcome === "error")
          metrics.errors.inc({ kind: `ui_${outcome}` });
      },
    });
    // HTTP/1.1 requests and responses have every member used here; the types differ only
    // in HTTP/2-specific extras.
    const listener = await listenDual(
      config.listenAddr,
      (req, res) => {
        if (ui(req, res)) return;
        if (isGrpcGetFlows(req as http2.Http2ServerRequest)) {
          res.setHeader(SERVER_VERSION_HEADER, pkg.version);
          serveGrpcGetFlows(
            fastDeps,
            req as http2.Http2ServerRequest,
            res as http2.Http2ServerResponse,
          ).catch((err: unknown) => log.error({ err }, "GetFlows stream failed"));
          return;
        }
        const web = webGetFlowsProtocol(req);
        if (web !== undefined) {
          res.setHeader(SERVER_VERSION_HEADER, pkg.version);
          serveWebGetFlows(fastDeps, web, req, res).catch((err: unknown) =>
            log.error({ err }, "GetFlows stream failed"),
          );
          return;
        }
        guardRequest(req as http2.Http2ServerRequest, config.maxFilters, config.maxRequestBytes);
        // Merged into the headers the adapter writes, so errors carry it too.
        res.setHeader(SERVER_VERSION_HEADER, pkg.version);
        specGrpcMessages(res as http2.Http2ServerResponse);
        handler(req, res);
      },
      {
        ...(serverTls ? { tls: serverTls } : {}),
        onTlsError: (err) => {
          metrics.errors.inc({ kind: "tls_handshake" });
          log.debug({ err: err.message }, "TLS handshake failed");
        },
      },
    );
    const grace = opts.shutdownGraceMs ?? 2000;
    cleanups.push(async () => {
      stopping.abort();
      store.ring.close(); // ends follow streams with OK status
      agentEvents.close();
      debugEvents.close();
      telemetryHub.closeAll();
      await listener.close(grace);
    });
    const bound = listener.server.address() as AddressInfo;

    let ops: OpsServer | undefined;
    if (!opts.noOps) {
      ops = await startOpsServer({
        addr: config.opsAddr,
        registry: telemetry.registry,
        ready: () => bus.connected(),
        log,
      });
      const opsServer = ops;
      cleanups.push(() => opsServer.stop());
    }

    const socketPath = unixSocketPath(config.listenAddr);
    const host = socketPath ?? parseHostPort(config.listenAddr).host;
    const scheme = serverTls ? "https" : "http";
    log.info(
      {
        listen: socketPath !== undefined ? config.listenAddr : `${host}:${bound.port}`,
        tls: serverTls ? (serverTls.requestCert ? "mutual" : "server") : "off",
        auth: credentials ? Object.keys(credentials) : "off",
        ops: ops?.url,
        nats: bus.url,
        maxFlows: config.maxFlows,
        maxConcurrentStreams: config.maxConcurrentStreams,
      },
      "observer started",
    );
    let stopped: Promise<void> | undefined;
    return {
      port: socketPath !== undefined ? 0 : bound.port,
      host,
      url:
        socketPath !== undefined
          ? config.listenAddr
          : `${scheme}://${host.includes(":") ? `[${host}]` : host}:${bound.port}`,
      opsPort: ops?.port,
      store,
      metrics,
      bus,
      stop() {
        stopped ??= cleanup();
        return stopped;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
