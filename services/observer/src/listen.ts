import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { parseHostPort } from "@periscope/config";

/** Prefix of listen addresses that name a unix socket: `unix:///run/periscope.sock`. */
export const UNIX_PREFIX = "unix://";

/** The socket path of a `unix://` address, or undefined for `host:port`. */
export function unixSocketPath(addr: string): string | undefined {
  return addr.startsWith(UNIX_PREFIX) ? addr.slice(UNIX_PREFIX.length) : undefined;
}

/** Options of {@link listenDual}. */
export interface ListenOptions {
  /** Serve TLS (ALPN picks h2 or http/1.1; without ALPN the first bytes decide). */
  readonly tls?: tls.TlsOptions;
  /** A TLS handshake that failed (e.g. no or a wrong client certificate). */
  onTlsError?(err: Error): void;
}

/**
 * Removes a socket file left by a process that is gone; throws when something still
 * accepts connections on it or the path is not a socket.
 */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect({ path });
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
  if (live) throw new Error(`${path}: a server is already listening on this socket`);
  unlinkSync(path);
}

/** The client connection preface every HTTP/2 connection opens with (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** The protocol a connection's first bytes announce, or undefined while they could be either. */
export function sniffProtocol(head: Uint8Array): "h2" | "http1" | undefined {
  const n = Math.min(head.length, H2_PREFACE.length);
  for (let i = 0; i < n; i++) if (head[i] !== H2_PREFACE[i]) return "http1";
  return n === H2_PREFACE.length ? "h2" : undefined;
}

/** A request handler both HTTP versions share (the Connect node adapter is one). */
export type DualHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** A port serving HTTP/1.1 and HTTP/2 cleartext (prior knowledge) side by side. */
export interface DualListener {
  /** The listening socket; `address()` gives the bound port. */
  readonly server: net.Server;
  /**
   * Stops accepting, asks open connections to finish (GOAWAY on HTTP/2, `Connection:
   * close` on HTTP/1.1, idle ones closed at once) and resolves once every connection is
   * gone; after `graceMs` the rest are destroyed.
   */
  close(graceMs: number): Promise<void>;
}

/**
 * Listens on `addr` and serves `handler` over both HTTP/1.1 (Connect and gRPC-Web from
 * browsers, curl) and HTTP/2 cleartext with prior knowledge (gRPC clients, the hubble
 * CLI). Node's `allowHTTP1` only negotiates via TLS ALPN, so the first bytes of each
 * connection are read here: the HTTP/2 preface sends it to the HTTP/2 server, anything
 * else to the HTTP/1.1 one, with the bytes read put back on the socket first. `addr` is
 * `host:port` or `unix:///path` (a stale socket file is removed first, the new one gets
 * mode 0660 and is removed on close). With `opts.tls` the same happens after the TLS
 * handshake, whose ALPN offers h2 and http/1.1.
 */
export async function listenDual(
  addr: string,
  handler: DualHandler,
  opts: ListenOptions = {},
): Promise<DualListener> {
  const socketPath = unixSocketPath(addr);
  const h2 = http2.createServer(handler);
  const h1 = http.createServer((req, res) => {
    // Keep-alive connections of a closing server end once no request is in flight.
    const socket = req.socket;
    h1Busy.set(socket, (h1Busy.get(socket) ?? 0) + 1);
    if (closing) res.shouldKeepAlive = false;
    res.once("close", () => {
      const left = (h1Busy.get(socket) ?? 1) - 1;
      h1Busy.set(socket, left);
      if (closing && left === 0) socket.end();
    });
    handler(req, res);
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  const sockets = new Set<net.Socket>();
  /** HTTP/1.1 sockets with the number of requests in flight on each. */
  const h1Busy = new Map<net.Socket, number>();
  const h2Sockets = new Set<net.Socket>();
  let closing = false;
  /** Resolves close() once the last connection is gone. */
  let drained: (() => void) | undefined;

  const onSocket = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on("close", () => {
      sockets.delete(socket);
      if (sockets.size === 0) drained?.();
      h1Busy.delete(socket);
      h2Sockets.delete(socket);
    });
    socket.on("error", () => socket.destroy()); // a reset before the first bytes
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const proto = sniffProtocol(head);
      if (proto === undefined) return;
      socket.off("data", onData);
      socket.pause();
      socket.unshift(head);
      if (proto === "h2") {
        h2Sockets.add(socket);
        h2.emit("connection", socket);
      } else {
        h1Busy.set(socket, 0);
        h1.emit("connection", socket);
      }
      socket.resume();
    };
    socket.on("data", onData);
  };
  /** TLS connections still in their handshake (destroyed when the grace period ends). */
  const handshaking = new Set<net.Socket>();
  let server: net.Server;
  if (opts.tls) {
    const secure = tls.createServer(opts.tls, onSocket);
    secure.on("connection", (raw: net.Socket) => {
      handshaking.add(raw);
      raw.once("close", () => handshaking.delete(raw));
    });
    secure.on("tlsClientError", (err) => opts.onTlsError?.(err));
    server = secure;
  } else {
    server = net.createServer(onSocket);
  }
  if (socketPath !== undefined) await clearStaleSocket(socketPath);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const listening = (): void => {
      server.off("error", reject);
      resolve();
    };
    if (socketPath !== undefined) server.listen(socketPath, listening);
    else {
      const { host, port } = parseHostPort(addr);
      server.listen(port, host, listening);
    }
  });
  if (socketPath !== undefined) chmodSync(socketPath, 0o660);

  let closed: Promise<void> | undefined;
  const close = (graceMs: number): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      const stopped = Promise.all([
        new Promise<void>((resolve) => server.close(() => resolve())),
        new Promise<void>((resolve) => {
          if (sockets.size === 0) resolve();
          else drained = resolve;
        }),
      ]);
      for (const s of sessions) s.close();
      // Sockets not yet sniffed, and HTTP/1.1 ones idle between requests.
      for (const s of sockets) if (!h2Sockets.has(s) && !h1Busy.get(s)) s.destroy();
      const timer = setTimeout(() => {
        for (const s of sessions) s.destroy();
        for (const s of sockets) s.destroy();
        for (const s of handshaking) s.destroy();
      }, graceMs);
      await stopped;
      clearTimeout(timer);
      if (socketPath !== undefined) {
        try {
          unlinkSync(socketPath);
        } catch {
          // already removed by the runtime
        }
      }
    })();
    return closed;
  };
  return { server, close };
}
