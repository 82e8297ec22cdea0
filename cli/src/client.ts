import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { rpcCodeLabel } from "@periscope/model";
import { Observer } from "@periscope/proto";
import { observerTransport } from "./connection.ts";

/** Default observer address, like hubble's `localhost:4245`. */
export const DEFAULT_SERVER = "localhost:4245";

/** `host:port` → `http://host:port`; URLs with a scheme pass through. */
export function serverBaseUrl(server: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(server) ? server : `http://${server}`;
}

/**
 * An Observer client speaking gRPC over HTTP/2 (h2c for http:// addresses, TLS for
 * https:// or `--tls`, `unix:///path` sockets) with the run's connection options.
 */
export function observerClient(server: string): Client<typeof Observer> {
  return createClient(Observer, observerTransport(server));
}

/** One line describing a failed call: "<code>: <message>". */
export function describeRpcError(err: unknown): string {
  const ce = ConnectError.from(err);
  return `${rpcCodeLabel(ce.code)}: ${ce.rawMessage}`;
}

/** True when `err` is the client's own cancellation (e.g. Ctrl-C during --follow). */
export function isCanceled(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted && ConnectError.from(err).code === Code.Canceled;
}
