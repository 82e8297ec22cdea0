/**
 * GetFlows over a plain HTTP/2 stream: the gRPC request and its length-prefixed response
 * messages read straight off the socket, each handed to a caller's decoder (the lazy
 * compact one, see compact-decoder.ts). Errors come out as ConnectError with the gRPC
 * status the server sent, like the Connect client's, so the follow loop treats both alike.
 */
import * as http2 from "node:http2";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type GetFlowsRequest,
  GetFlowsRequestSchema,
  type GetFlowsResponse,
} from "@periscope/proto";
import {
  authorizationHeader,
  type ConnectionOptions,
  currentConnection,
  observerEndpoint,
} from "./connection.ts";

/** Receive window of the stream and the connection: large, so the server never waits on us. */
const WINDOW_BYTES = 16 * 1024 * 1024;

/** Largest response message accepted (the server's flows are far smaller). */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Options of one {@link rawGetFlows} call. */
export interface RawCallOptions {
  /** Aborting it ends the call with a Canceled ConnectError. */
  readonly signal: AbortSignal;
  /** Called once the server's response headers arrive. */
  readonly onHeader?: () => void;
}

/** gRPC code for an HTTP status without grpc-status, as gRPC clients map them. */
function codeOfHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The error a grpc-status header (or trailer) carries; undefined for OK or none. */
function statusError(h: http2.IncomingHttpHeaders): ConnectError | undefined {
  const status = headerText(h["grpc-status"]);
  if (status === undefined || status === "0") return undefined;
  const code = Number.parseInt(status, 10);
  const raw = headerText(h["grpc-message"]) ?? "";
  let message = raw;
  try {
    message = decodeURIComponent(raw);
  } catch {}
  return new ConnectError(
    message,
    Number.isInteger(code) && code > 0 && code <= 16 ? (code as Code) : Code.Unknown,
  );
}

/** Where `server` is and how to reach it, as observerTransport reads the address. */
function dial(
  server: string,
  conn: ConnectionOptions,
): { authority: string; opts: http2.SecureClientSessionOptions } {
  const { baseUrl, tlsOptions, createConnection } = observerEndpoint(server, conn);
  const opts: http2.SecureClientSessionOptions = {
    ...tlsOptions,
    settings: { initialWindowSize: WINDOW_BYTES },
    ...(createConnection !== undefined ? { createConnection } : {}),
  };
  return { authority: baseUrl, opts };
}

/**
 * Streams GetFlows(`request`) from `server`, yielding each response message as
 * `decode` turns it into a GetFlowsResponse. Throws ConnectError: the server's gRPC
 * status, Unavailable when the connection fails, Canceled when `opts.signal` aborts,
 * Internal for a message that cannot be decoded.
 */
export async function* rawGetFlows(
  server: string,
  request: GetFlowsRequest,
  decode: (bytes: Uint8Array) => GetFlowsResponse,
  opts: RawCallOptions,
  conn: ConnectionOptions = currentConnection(),
): AsyncGenerator<GetFlowsResponse> {
  if (opts.signal.aborted) throw new ConnectError("the call was canceled", Code.Canceled);
  const { authority, opts: sessionOpts } = dial(server, conn);
  const session = http2.connect(authority, sessionOpts);
  let failure: ConnectError | undefined;
  let wake: (() => void) | undefined;
  const chunks: Buffer[] = [];
  let ended = false;
  let statusOk = false;
  const poke = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const fail = (e: ConnectError): void => {
    failure ??= e;
    poke();
  };
  session.on("error", (e: Error) => fail(new ConnectError(e.message, Code.Unavailable)));
  session.once("connect", () => {
    try {
      session.setLocalWindowSize(WINDOW_BYTES);
    } catch {}
  });
  const headers: http2.OutgoingHttpHeaders = {
    ":method": "POST",
    ":path": "/observer.Observer/GetFlows",
    "content-type": "application/grpc+proto",
    te: "trailers",
  };
  const auth = authorizationHeader(conn);
  if (auth !== undefined) headers.authorization = auth;
  const stream = session.request(headers);
  const onAbort = (): void => {
    fail(new ConnectError("the call was canceled", Code.Canceled));
    stream.close(http2.constants.NGHTTP2_CANCEL);
  };
  opts.signal.addEventListener("abort", onAbort, { once: true });
  stream.on("response", (h) => {
    const status = Number(h[":status"] ?? 0);
    const err = statusError(h);
    if (err) return fail(err);
    if (headerText(h["grpc-status"]) === "0") statusOk = true;
    if (status !== 200) {
      return fail(new ConnectError(`HTTP status ${status}`, codeOfHttpStatus(status)));
    }
    const type = headerText(h["content-type"]) ?? "";
    if (!type.startsWith("application/grpc")) {
      return fail(new ConnectError(`unexpected content type "${type}"`, Code.Internal));
    }
    opts.onHeader?.();
  });
  stream.on("trailers", (h) => {
    const err = statusError(h);
    if (err) fail(err);
    else if (headerText(h["grpc-status"]) === "0") statusOk = true;
  });
  stream.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    poke();
  });
  stream.on("close", () => {
    if (!statusOk && failure === undefined) {
      fail(new ConnectError("the stream closed without a gRPC status", Code.Unavailable));
    }
    ended = true;
    poke();
  });
  stream.on("error", (e: Error) => fail(new ConnectError(e.message, Code.Unavailable)));
  const body = toBinary(GetFlowsRequestSchema, request);
  const env = Buffer.alloc(5 + body.length);
  env.writeUInt32BE(body.length, 1);
  env.set(body, 5);
  stream.end(env);

  let head: Buffer = Buffer.alloc(0);
  try {
    for (;;) {
      if (chunks.length === 0 && failure === undefined && !ended) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      if (opts.signal.aborted && failure !== undefined) throw failure;
      // Messages that arrived before an error status are still delivered.
      if (chunks.length > 0) {
        const buf: Buffer =
          head.length === 0 && chunks.length === 1
            ? (chunks[0] as Buffer)
            : Buffer.concat([head, ...chunks]);
        chunks.length = 0;
        let at = 0;
        while (buf.length - at >= 5) {
          const flags = buf[at] as number;
          const len = buf.readUInt32BE(at + 1);
          if (len > MAX_MESSAGE_BYTES) {
            throw new ConnectError(
              `message of ${len} bytes is larger than ${MAX_MESSAGE_BYTES}`,
              Code.ResourceExhausted,
            );
          }
          if (buf.length - at - 5 < len) break;
          if ((flags & 1) !== 0) {
            throw new ConnectError(
              "compressed message, but no compression was asked for",
              Code.Internal,
            );
          }
          const payload = buf.subarray(at + 5, at + 5 + len);
          at += 5 + len;
          let resp: GetFlowsResponse;
          try {
            resp = decode(payload);
          } catch (e) {
            throw new ConnectError(
              `cannot decode a GetFlowsResponse: ${e instanceof Error ? e.message : String(e)}`,
              Code.Internal,
            );
          }
          yield resp;
          if (opts.signal.aborted && failure !== undefined) throw failure;
        }
        head = at < buf.length ? buf.subarray(at) : Buffer.alloc(0);
        continue;
      }
      if (failure !== undefined) throw failure;
      if (ended) {
        if (head.length > 0)
          throw new ConnectError("the stream ended inside a message", Code.Internal);
        return;
      }
    }
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    session.close();
  }
}
