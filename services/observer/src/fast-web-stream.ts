import type { ConnectError } from "@connectrpc/connect";
import {
  endStreamFlag,
  endStreamToJson,
  parseTimeout as parseConnectTimeout,
} from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag } from "@connectrpc/connect/protocol-grpc-web";
import {
  type FastProtocol,
  type FastRequest,
  type FastResponse,
  type FastStreamDeps,
  header,
  readableEncoding,
  serveFastGetFlows,
  writeHead,
} from "./fast-core.ts";
import { encodeGrpcMessage } from "./grpc-message.ts";
import { GET_FLOWS_PATH } from "./request-guard.ts";

/** Content type of a Connect binary stream. */
export const CONNECT_PROTO = "application/connect+proto";
/** Content type of a gRPC-Web binary stream. */
export const GRPC_WEB_PROTO = "application/grpc-web+proto";

const encoder = new TextEncoder();

/** One enveloped message: flags, 4-byte big-endian length, data. */
function envelope(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + data.length);
  out[0] = flags;
  out.writeUInt32BE(data.length, 1);
  out.set(data, 5);
  return out;
}

/**
 * Connect streaming: `connect-timeout-ms`, and the stream ends with an end-stream message
 * (flag 0x02) carrying `{}` or `{"error":{"code":…,"message":…}}` plus any metadata, as
 * JSON; HTTP status 200 either way.
 */
const connectProtocol: FastProtocol = {
  contentType: CONNECT_PROTO,
  encodingHeader: "connect-content-encoding",
  timeout: (req) => parseConnectTimeout(header(req, "connect-timeout-ms"), Number.MAX_SAFE_INTEGER),
  finish(res, err, headersSent) {
    if (!headersSent) writeHead(res, { "content-type": CONNECT_PROTO });
    const json = endStreamToJson(new Headers(), err, undefined);
    res.end(envelope(endStreamFlag, encoder.encode(JSON.stringify(json))));
  },
};

/** The gRPC-Web trailer block: `grpc-status` and, unless OK, the spec-encoded `grpc-message`. */
function trailerBlock(err: ConnectError | undefined): string {
  if (err === undefined) return "grpc-status: 0\r\n";
  let out = "";
  err.metadata.forEach((value, key) => {
    if (key !== "grpc-status" && key !== "grpc-message") out += `${key}: ${value}\r\n`;
  });
  return `${out}grpc-status: ${err.code}\r\ngrpc-message: ${encodeGrpcMessage(err.rawMessage)}\r\n`;
}

/**
 * gRPC-Web: `grpc-timeout`, and the stream ends with a trailers message (flag 0x80)
 * carrying `grpc-status` and `grpc-message` as header lines; HTTP status 200 either way.
 */
const grpcWebProtocol: FastProtocol = {
  contentType: GRPC_WEB_PROTO,
  encodingHeader: "grpc-encoding",
  timeout: (req) => parseGrpcTimeout(header(req, "grpc-timeout"), Number.MAX_SAFE_INTEGER),
  finish(res, err, headersSent) {
    if (!headersSent) writeHead(res, { "content-type": GRPC_WEB_PROTO });
    res.end(envelope(trailerFlag, encoder.encode(trailerBlock(err))));
  },
};

/** Content type of a gRPC-Web text (base64) stream. */
export const GRPC_WEB_TEXT_PROTO = "application/grpc-web-text+proto";

/**
 * gRPC-Web text, as browsers' grpc-web clients send by default: the same as
 * {@link grpcWebProtocol} with both bodies base64, each write (and the trailers) one padded
 * run. The Connect handler does not serve it.
 */
const grpcWebTextProtocol: FastProtocol = {
  contentType: GRPC_WEB_TEXT_PROTO,
  encodingHeader: "grpc-encoding",
  text: true,
  timeout: grpcWebProtocol.timeout,
  finish(res, err, headersSent) {
    if (!headersSent) writeHead(res, { "content-type": GRPC_WEB_TEXT_PROTO });
    const trailers = envelope(trailerFlag, encoder.encode(trailerBlock(err)));
    res.end(Buffer.from(trailers.toString("base64"), "latin1"));
  },
};

/**
 * The protocol of a Connect (`application/connect+proto`), gRPC-Web
 * (`application/grpc-web`, `+proto`) or gRPC-Web text (`application/grpc-web-text`,
 * `+proto`) GetFlows request over HTTP/1.1 or HTTP/2 whose message is uncompressed or gzip,
 * or undefined for anything else: JSON codecs, other compressions and other methods stay
 * with the Connect handler.
 */
export function webGetFlowsProtocol(req: FastRequest): FastProtocol | undefined {
  if (req.method !== "POST") return undefined;
  if (req.url?.split("?", 1)[0] !== GET_FLOWS_PATH) return undefined;
  const type = String(req.headers["content-type"] ?? "").toLowerCase();
  let proto: FastProtocol;
  if (type === CONNECT_PROTO) proto = connectProtocol;
  else if (type === GRPC_WEB_PROTO || type === "application/grpc-web") proto = grpcWebProtocol;
  else if (type === GRPC_WEB_TEXT_PROTO || type === "application/grpc-web-text")
    proto = grpcWebTextProtocol;
  else return undefined;
  return readableEncoding(req, proto.encodingHeader) ? proto : undefined;
}

/**
 * Serves a Connect or gRPC-Web binary GetFlows stream (the browser's path, HTTP/1.1 or
 * HTTP/2) with the stream writer gRPC uses ({@link serveFastGetFlows}): stored bytes framed
 * into 64 KiB writes, at most 256 KiB queued for a client that does not read, then a
 * LostEvent with the exact count once it reads again.
 */
export function serveWebGetFlows(
  deps: FastStreamDeps,
  proto: FastProtocol,
  req: FastRequest,
  res: FastResponse,
): Promise<void> {
  return serveFastGetFlows(deps, proto, req, res);
}
