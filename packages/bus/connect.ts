import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { BusConnectError } from "./errors.ts";
import { type LocalNats, startLocalNats } from "./local.ts";
import type { BusLogger } from "./log.ts";

/** Where services look for NATS when no URL is configured. */
export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";
/** JetStream store of the local nats-server a service starts when none answers. */
export const DEFAULT_LOCAL_STORE_DIR = "/var/lib/periscope/nats";

/** Options for {@link connectBus}. */
export interface ConnectBusOptions {
  /** NATS URL (or comma list); absent → {@link DEFAULT_NATS_URL}. */
  url?: string;
  /** Connection name shown by the server (e.g. the service name). */
  name: string;
  /**
   * Only when `url` is absent: start a local `nats-server -js` on 127.0.0.1:4222 if nothing
   * answers there. The bus then owns it and `close()` stops it.
   */
  startLocal?: boolean;
  /** Store dir for that local server (default {@link DEFAULT_LOCAL_STORE_DIR}). */
  localStoreDir?: string;
  /**
   * The address tried (and where a local server is started) when `url` is absent;
   * default {@link DEFAULT_NATS_URL}. Must be `nats://<ipv4-or-name>:<port>`.
   */
  defaultUrl?: string;
  /** First-connection timeout per attempt, ms (default 2000). */
  timeoutMs?: number;
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
  /** Drains the connection, then stops the local server if this bus started it. Safe twice. */
  close(): Promise<void>;
  /** Present when this bus started its own nats-server. */
  readonly localServer?: LocalNats;
}

async function dial(url: string, name: string, timeoutMs: number): Promise<NatsConnection> {
  return connect({
    servers: url.split(",").map((s) => s.trim()),
    name,
    timeout: timeoutMs,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  });
}

/**
 * Connects to NATS. Without `url` it tries {@link DEFAULT_NATS_URL}; if that does not
 * answer and `startLocal` is set, it starts a nats-server there and owns it. If a
 * concurrently starting service wins the race for the port, this one connects to it.
 * Throws {@link BusConnectError}.
 */
export async function connectBus(opts: ConnectBusOptions): Promise<Bus> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const url = opts.url ?? opts.defaultUrl ?? DEFAULT_NATS_URL;
  const log = opts.log;
  let nc: NatsConnection;
  let localServer: LocalNats | undefined;
  try {
    nc = await dial(url, opts.name, timeoutMs);
  } catch (firstErr) {
    if (opts.url !== undefined || !opts.startLocal) {
      throw new BusConnectError(`cannot connect to NATS at ${url}`, { cause: firstErr });
    }
    const storeDir = opts.localStoreDir ?? DEFAULT_LOCAL_STORE_DIR;
    log.info({ url, storeDir }, "no NATS answering; starting a local nats-server");
    try {
      const where = new URL(url.replace(/^nats:/, "http:"));
      localServer = await startLocalNats({
        host: where.hostname,
        port: Number(where.port || 4222),
        storeDir,
        log,
      });
    } catch (startErr) {
      // Another process may have started one on the same port meanwhile.
      log.warn({ err: startErr }, "local nats-server did not start; retrying the connection");
    }
    try {
      nc = await dial(url, opts.name, timeoutMs);
    } catch (err) {
      await localServer?.stop();
      throw new BusConnectError(`cannot connect to NATS at ${url} (local server tried)`, {
        cause: err,
      });
    }
  }

  let up = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        up = false;
        log.warn({ server: s.server }, "NATS disconnected");
      } else if (s.type === "reconnect") {
        up = true;
        log.info({ server: s.server }, "NATS reconnected");
      }
    }
  })();
  log.info({ url, local: localServer !== undefined }, "connected to NATS");

  let js: JetStreamClient | undefined;
  let kvm: Kvm | undefined;
  let closing: Promise<void> | undefined;
  const bus: Bus = {
    nc,
    url,
    log,
    js: () => {
      js ??= jetstream(nc);
      return js;
    },
    jsm: () => jetstreamManager(nc),
    kvm: () => {
      kvm ??= new Kvm(bus.js());
      return kvm;
    },
    connected: () => up && !nc.isClosed(),
    close() {
      closing ??= (async () => {
        up = false;
        if (!nc.isClosed()) {
          try {
            await nc.drain();
          } catch (err) {
            log.warn({ err }, "NATS drain failed; closing");
            await nc.close();
          }
        }
        await localServer?.stop();
      })();
      return closing;
    },
    ...(localServer ? { localServer } : {}),
  };
  return bus;
}
