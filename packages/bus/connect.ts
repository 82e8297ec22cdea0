import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { BusConnectError } from "./errors.ts";
import type { BusLogger } from "./log.ts";

/** Where services look for NATS when no URL is configured. */
export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";
/** JetStream store the run command gives the nats-server it starts (scripts/up.ts). */
export const DEFAULT_LOCAL_STORE_DIR = "/var/lib/periscope/nats";

/** Options for {@link connectBus}. */
export interface ConnectBusOptions {
  /** NATS URL (or comma list); absent → `defaultUrl` or {@link DEFAULT_NATS_URL}. */
  url?: string;
  /** Connection name shown by the server (e.g. the service name). */
  name: string;
  /** The address tried when `url` is absent; default {@link DEFAULT_NATS_URL}. */
  defaultUrl?: string;
  /** Timeout of one connection attempt, ms (default 2000). */
  timeoutMs?: number;
  /**
   * Give up the first connection after this many ms with a {@link BusConnectError}.
   * Absent: keep trying (backoff 100 ms doubling to 2 s) until the broker answers or
   * `signal` aborts. Services never start a broker themselves.
   */
  firstConnectTimeoutMs?: number;
  /** Aborts the first-connection retries with a {@link BusConnectError}. */
  signal?: AbortSignal;
  log: BusLogger;
}

/** A NATS connection plus the JetStream/KV handles every service needs. */
export interface Bus {
  readonly nc: NatsConnection;
  /** The URL actually connected to. */
  readonly url: string;
  readonly log: BusLogger;
  /** JetStream client on `nc`. */
  js(): JetStreamClient;
  /** JetStream manager on `nc` (checks that JetStream is enabled). */
  jsm(): Promise<JetStreamManager>;
  /** KV manager on `nc`. */
  kvm(): Kvm;
  /** True while the connection is up (false between a disconnect and a reconnect). */
  connected(): boolean;
  /** Registers `fn` to run after every reconnect (e.g. to re-check streams). */
  onReconnect(fn: () => void): void;
  /** Drains the connection. Safe twice. */
  close(): Promise<void>;
}

async function dial(url: string, name: string, timeoutMs: number): Promise<NatsConnection> {
  return connect({
    servers: url.split(",").map((s) => s.trim()),
    name,
    timeout: timeoutMs,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 5000,
    maxPingOut: 2,
  });
}

/**
 * Connects to NATS, retrying with backoff until the broker answers (or until
 * `firstConnectTimeoutMs` / `signal`), then reconnects forever on its own. Callers
 * serve readiness from {@link Bus.connected}. Throws {@link BusConnectError}.
 */
export async function connectBus(opts: ConnectBusOptions): Promise<Bus> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const url = opts.url ?? opts.defaultUrl ?? DEFAULT_NATS_URL;
  const log = opts.log;
  const deadline =
    opts.firstConnectTimeoutMs === undefined
      ? Number.POSITIVE_INFINITY
      : Date.now() + opts.firstConnectTimeoutMs;
  let nc: NatsConnection | undefined;
  let backoffMs = 100;
  for (let attempt = 1; nc === undefined; attempt++) {
    try {
      nc = await dial(url, opts.name, Math.min(timeoutMs, Math.max(1, deadline - Date.now())));
    } catch (err) {
      if (opts.signal?.aborted || Date.now() + backoffMs > deadline) {
        throw new BusConnectError(`cannot connect to NATS at ${url} (${attempt} attempts)`, {
          cause: err,
        });
      }
      if (attempt === 1 || attempt % 10 === 0) {
        log.warn({ url, attempt, err: String(err) }, "NATS not answering; retrying");
      }
      await Bun.sleep(backoffMs);
      backoffMs = Math.min(backoffMs * 2, 2000);
    }
  }
  const conn = nc;

  let up = true;
  const reconnectHooks: (() => void)[] = [];
  void (async () => {
    for await (const s of conn.status()) {
      if (s.type === "disconnect") {
        up = false;
        log.warn({ server: s.server }, "NATS disconnected");
      } else if (s.type === "reconnect") {
        up = true;
        log.info({ server: s.server }, "NATS reconnected");
        for (const fn of reconnectHooks) fn();
      }
    }
  })();
  log.info({ url }, "connected to NATS");

  let js: JetStreamClient | undefined;
  let kvm: Kvm | undefined;
  let closing: Promise<void> | undefined;
  const bus: Bus = {
    nc: conn,
    url,
    log,
    js: () => {
      js ??= jetstream(conn);
      return js;
    },
    jsm: () => jetstreamManager(conn),
    kvm: () => {
      kvm ??= new Kvm(bus.js());
      return kvm;
    },
    connected: () => up && !conn.isClosed(),
    onReconnect: (fn) => {
      reconnectHooks.push(fn);
    },
    close() {
      closing ??= (async () => {
        up = false;
        if (!conn.isClosed()) {
          try {
            await conn.drain();
          } catch (err) {
            log.warn({ err }, "NATS drain failed; closing");
            await conn.close();
          }
        }
      })();
      return closing;
    },
  };
  return bus;
}
