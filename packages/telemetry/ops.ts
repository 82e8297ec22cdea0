import { parseHostPort } from "@periscope/config";
import type { Registry } from "prom-client";
import { TelemetryError } from "./errors.ts";
import type { Logger } from "./logger.ts";

/** Options for {@link startOpsServer}. */
export interface OpsServerOptions {
  /** `host:port` to listen on; port 0 picks a free port (see {@link OpsServer.port}). */
  addr: string;
  /** Registry rendered on `GET /metrics`. */
  registry: Registry;
  /** Decides `/readyz`: true → 200, false → 503. Called per request. */
  ready(): boolean;
  log: Logger;
}

/** A running ops HTTP server. */
export interface OpsServer {
  /** The port actually bound (differs from the requested one when that was 0). */
  readonly port: number;
  readonly host: string;
  /** `http://host:port` (IPv6 hosts in brackets). */
  readonly url: string;
  /** Stops listening and closes open connections; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text from `registry`), `/healthz` (200 while the
 * process runs) and `/readyz` (200 or 503 per `ready()`). Anything else is 404.
 */
export async function startOpsServer(opts: OpsServerOptions): Promise<OpsServer> {
  const { host, port } = parseHostPort(opts.addr);
  const { registry, ready, log } = opts;
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: host,
      port,
      async fetch(req) {
        const path = new URL(req.url).pathname;
        if (req.method !== "GET" && req.method !== "HEAD") {
          return new Response("method not allowed\n", { status: 405 });
        }
        switch (path) {
          case "/metrics":
            try {
              return new Response(await registry.metrics(), {
                headers: { "content-type": registry.contentType },
              });
            } catch (err) {
              log.error({ err }, "rendering metrics failed");
              return new Response("metrics unavailable\n", { status: 500 });
            }
          case "/healthz":
            return new Response("ok\n");
          case "/readyz":
            return ready() ? new Response("ready\n") : new Response("not ready\n", { status: 503 });
          default:
            return new Response("not found\n", { status: 404 });
        }
      },
    });
  } catch (err) {
    throw new TelemetryError(`ops server cannot listen on ${opts.addr}`, { cause: err });
  }
  const boundPort = server.port ?? port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${boundPort}`;
  log.info({ addr: `${host}:${boundPort}` }, "ops server listening");
  let stopped = false;
  return {
    port: boundPort,
    host,
    url,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop(true);
    },
  };
}
