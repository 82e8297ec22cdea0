import { hostname } from "node:os";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { connectBus } from "./connect.ts";
import type { BusLogger } from "./log.ts";
import {
  encodeBeat,
  type PresenceBeat,
  type PresenceState,
  parseBeat,
  presenceInstance,
  presenceSubjects,
} from "./presence-beat.ts";
import { type PresenceReport, PresenceTable, type PresenceTableOptions } from "./presence-table.ts";

/** Default heartbeat interval, ms. */
export const PRESENCE_INTERVAL_MS = 1000;

/** Who is beating. */
export interface HeartbeatOptions {
  readonly service: string;
  readonly node: string;
  /** Default {@link PRESENCE_INTERVAL_MS}. */
  readonly intervalMs?: number;
  /** Software version carried in every beat, e.g. "periscope 0.1.0". */
  readonly version?: string;
  readonly log?: BusLogger;
}

/** A running heartbeat. */
export interface Heartbeat {
  /** This process's instance id (`<host>-<pid>`). */
  readonly instance: string;
  /** Says "stopping" (so watchers drop this instance at once) and stops beating. Safe twice. */
  stop(): Promise<void>;
}

function beat(
  o: HeartbeatOptions,
  state: PresenceState,
  startedMs: number,
  who = { host: hostname(), pid: process.pid },
): PresenceBeat {
  return {
    service: o.service,
    node: o.node,
    instance: presenceInstance(who.host, who.pid),
    host: who.host,
    pid: who.pid,
    state,
    startedMs,
    sentMs: Date.now(),
    intervalMs: o.intervalMs ?? PRESENCE_INTERVAL_MS,
    ...(o.version !== undefined ? { version: o.version } : {}),
  };
}

function publish(nc: NatsConnection, b: PresenceBeat, log?: BusLogger): void {
  try {
    nc.publish(presenceSubjects.one(b.service, b.node, b.instance), encodeBeat(b));
  } catch (err) {
    // A closed or draining connection: the next beat (or the watchers' staleness) tells.
    log?.debug({ err: String(err), state: b.state }, "presence beat not sent");
  }
}

/**
 * Publishes this process's heartbeat on `periscope.presence.<service>.<node>.<instance>`
 * now and every interval on `nc` (beats queue in the client while disconnected).
 */
export function startHeartbeat(nc: NatsConnection, opts: HeartbeatOptions): Heartbeat {
  const startedMs = Date.now();
  publish(nc, beat(opts, "up", startedMs), opts.log);
  const timer = setInterval(
    () => publish(nc, beat(opts, "up", startedMs), opts.log),
    opts.intervalMs ?? PRESENCE_INTERVAL_MS,
  );
  let stopped: Promise<void> | undefined;
  return {
    instance: presenceInstance(),
    stop() {
      stopped ??= (async () => {
        clearInterval(timer);
        publish(nc, beat(opts, "stopping", startedMs), opts.log);
        // Bounded: while disconnected a flush would wait for the reconnect.
        if (!nc.isClosed()) {
          await Promise.race([nc.flush().catch(() => undefined), Bun.sleep(500)]);
        }
      })();
      return stopped;
    },
  };
}

/**
 * Tells watchers that process `pid` of `service` on `host` died (a supervisor saw it exit
 * without a graceful stop), so they need not wait for its heartbeats to go stale.
 */
export function reportExited(
  nc: NatsConnection,
  who: { service: string; node: string; pid: number; host?: string },
): void {
  publish(
    nc,
    beat({ service: who.service, node: who.node }, "exited", 0, {
      host: who.host ?? hostname(),
      pid: who.pid,
    }),
  );
}

/** Options for {@link announcePresence}. */
export interface AnnounceOptions extends HeartbeatOptions {
  /** NATS URL; absent → the default local one. */
  readonly url: string | undefined;
}

/**
 * A heartbeat on a NATS connection of its own, so any service can announce itself
 * without handing out its bus. Connects in the background (retrying until NATS
 * answers); stop() says "stopping" and closes the connection.
 */
export function announcePresence(opts: AnnounceOptions): { stop(): Promise<void> } {
  const log = opts.log ?? { debug() {}, info() {}, warn() {}, error() {} };
  const abort = new AbortController();
  const running = connectBus({
    ...(opts.url !== undefined ? { url: opts.url } : {}),
    name: `periscope-presence-${opts.service}`,
    signal: abort.signal,
    log,
  }).then(
    (bus) => ({ bus, heartbeat: startHeartbeat(bus.nc, opts) }),
    (err: unknown) => {
      if (!abort.signal.aborted) log.warn({ err }, "presence heartbeat has no NATS connection");
      return undefined;
    },
  );
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        abort.abort();
        const r = await running;
        if (!r) return;
        await r.heartbeat.stop();
        await Promise.race([r.bus.close(), Bun.sleep(500)]);
        if (!r.bus.nc.isClosed()) await r.bus.nc.close();
      })();
      return stopped;
    },
  };
}

/** A live view of every service's presence. */
export interface PresenceWatch {
  /** The current report (see {@link PresenceTable.report}). */
  report(): PresenceReport;
  /** The latest beat of every live instance (see {@link PresenceTable.live}). */
  live(): PresenceBeat[];
  /** Presence messages that could not be decoded so far. */
  malformed(): number;
  stop(): Promise<void>;
}

/** Follows `periscope.presence.>` on `nc` into a {@link PresenceTable}. */
export function watchPresence(
  nc: NatsConnection,
  opts: PresenceTableOptions & { log?: BusLogger } = {},
): PresenceWatch {
  const table = new PresenceTable(opts);
  let malformed = 0;
  const sub: Subscription = nc.subscribe(presenceSubjects.all, {
    callback: (err, msg) => {
      if (err) {
        opts.log?.warn({ err }, "presence subscription failed");
        return;
      }
      try {
        table.observe(parseBeat(msg.data));
      } catch (e) {
        malformed++;
        if (malformed === 1 || malformed % 100 === 0) {
          opts.log?.warn({ err: e, subject: msg.subject, malformed }, "bad presence message");
        }
      }
    },
  });
  return {
    report: () => table.report(),
    live: () => table.live(),
    malformed: () => malformed,
    async stop() {
      if (!sub.isClosed()) sub.unsubscribe();
    },
  };
}
