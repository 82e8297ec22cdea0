import { createClient } from "@connectrpc/connect";
import { type ChangeNotification, ChangeNotificationType, Peer } from "@periscope/proto";
import { describeRpcError, isCanceled } from "./client.ts";
import { observerTransport } from "./connection.ts";

/** One `hubble watch peers` line: `%-12s <address> <name>[ (TLS.ServerName: …)]`. */
export function formatPeerChange(c: ChangeNotification): string {
  const type = ChangeNotificationType[c.type] ?? String(c.type);
  const tls = c.tls ? ` (TLS.ServerName: ${c.tls.serverName})` : "";
  return `${type.padEnd(12)} ${c.address} ${c.name}${tls}`;
}

/**
 * Runs `watch peers`: prints every peer.Peer/Notify change until the server ends the
 * stream or `signal` aborts (exit 0); a failed call is exit 1.
 */
export async function runWatchPeers(
  server: string,
  out: (line: string) => void,
  err: (line: string) => void,
  signal: AbortSignal,
): Promise<number> {
  try {
    for await (const c of createClient(Peer, observerTransport(server)).notify({}, { signal }))
      out(formatPeerChange(c));
    return 0;
  } catch (e) {
    if (isCanceled(e, signal)) return 0;
    err(`periscope: watch peers (via ${server}): ${describeRpcError(e)}`);
    return 1;
  }
}
