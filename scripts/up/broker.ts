import type { BusLogger } from "@periscope/bus";
import {
  canConnect,
  formatDelay,
  type LocalNats,
  RestartBackoff,
  startLocalNats,
} from "@periscope/devstack";

/** Options for {@link ownBroker}. */
export interface OwnBrokerOptions {
  readonly port: number;
  readonly storeDir: string;
  /** One line per lifecycle change ("nats-server exited; restarting in 1s (restart #1)"). */
  readonly notice: (line: string) => void;
  readonly log: BusLogger;
  /** How often the server's process is checked, ms (default 250). */
  readonly checkEveryMs?: number;
}

/** The local nats-server the run command owns. */
export interface OwnedBroker {
  readonly url: string;
  /** Restarts so far. */
  restarts(): number;
  /** Stops watching and stops the server. Safe twice. */
  stop(): Promise<void>;
}

/** True while process `pid` exists. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // ESRCH: gone (the child was reaped by the runtime).
    return false;
  }
}

/**
 * Starts `nats-server -js` on 127.0.0.1:`port` with its store in `storeDir` and keeps it
 * running: when it dies it is started again on the same port and store (backoff 1 s
 * doubling to 30 s, reset after 10 s up), so services reconnect to the same streams.
 */
export async function ownBroker(opts: OwnBrokerOptions): Promise<OwnedBroker> {
  const start = (): Promise<LocalNats> =>
    startLocalNats({ host: "127.0.0.1", port: opts.port, storeDir: opts.storeDir, log: opts.log });
  let server = await start();
  let upSinceMs = Date.now();
  const backoff = new RestartBackoff();
  let restarts = 0;
  let stopped = false;
  let restarting = false;

  const restart = async (): Promise<void> => {
    restarting = true;
    while (!stopped) {
      const delay = backoff.next(Date.now() - upSinceMs);
      restarts++;
      opts.notice(`nats-server exited; restarting in ${formatDelay(delay)} (restart #${restarts})`);
      await Bun.sleep(delay);
      if (stopped) break;
      try {
        server = await start();
        if (stopped) {
          await server.stop();
          break;
        }
        upSinceMs = Date.now();
        opts.notice(`nats-server restarted on ${server.url}`);
        break;
      } catch (err) {
        opts.log.error({ err }, "nats-server did not start again");
        upSinceMs = Date.now();
      }
    }
    restarting = false;
  };
  const watch = setInterval(() => {
    if (!stopped && !restarting && !running(server.pid)) void restart();
  }, opts.checkEveryMs ?? 250);

  let stopping: Promise<void> | undefined;
  return {
    url: server.url,
    restarts: () => restarts,
    stop() {
      stopping ??= (async () => {
        stopped = true;
        clearInterval(watch);
        await server.stop();
      })();
      return stopping;
    },
  };
}

/** True when a broker already answers on 127.0.0.1:`port`. */
export function brokerAnswers(port: number): Promise<boolean> {
  return canConnect("127.0.0.1", port);
}
