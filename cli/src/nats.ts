/** How CLI commands that read NATS directly (`flows`, `monitor`, `policy`) connect to it. */
import { type Bus, connectBus } from "@periscope/bus";

const quietLog = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Connects `periscope <command>` to NATS at `natsUrl` without logging: up to 5 s for the
 * first connection, given up as soon as `signal` aborts. Throws BusConnectError.
 */
export function connectCliBus(command: string, natsUrl: string, signal: AbortSignal): Promise<Bus> {
  return connectBus({
    url: natsUrl,
    name: `periscope-${command}`,
    firstConnectTimeoutMs: 5000,
    signal,
    log: quietLog,
  });
}

/**
 * {@link connectCliBus}, or the command's exit code when it failed: 0 when `io.signal`
 * aborted (Ctrl-C), else 1 after `periscope <command>: cannot reach NATS at <url>: <why>`
 * on `io.err`.
 */
export async function connectCliBusOrExit(
  command: string,
  natsUrl: string,
  io: { err(line: string): void; signal: AbortSignal },
): Promise<Bus | number> {
  try {
    return await connectCliBus(command, natsUrl, io.signal);
  } catch (err) {
    if (io.signal.aborted) return 0;
    io.err(
      `periscope ${command}: cannot reach NATS at ${natsUrl}: ${err instanceof Error ? err.message : String(err)}`,
    );
    return 1;
  }
}
