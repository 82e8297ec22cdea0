import type { OutgoingHttpHeaders } from "node:http";
import type * as http2 from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import {
  type FastProtocol,
  type FastStreamDeps,
  header,
  readableEncoding,
  serveFastGetFlows,
} from "./fast-core.ts";
import { encodeGrpcMessage } from "./grpc-message.ts";
import { GET_FLOWS_PATH } from "./request-guard.ts";

export {
  type FastStreamDeps,
  MAX_QUEUED_BYTES,
  WRITE_CHUNK_BYTES,
} from "./fast-core.ts";

const GRPC_CONTENT_TYPES = new Set(["application/grpc", "application/grpc+proto"]);

/**
 * True for the requests {@link serveGrpcGetFlows} answers: gRPC (binary protobuf) GetFlows
 * over HTTP/2, uncompressed or gzip. gRPC-Web and Connect binary streams are answered by
 * fast-web-stream.ts; everything else (JSON, other methods) is left to the Connect handler.
 */
export function isGrpcGetFlows(req: http2.Http2ServerRequest): boolean {
  if (req.httpVersionMajor !== 2 || req.method !== "POST") return false;
  if (req.url?.split("?", 1)[0] !== GET_FLOWS_PATH) return false;
  const type = String(req.headers["content-type"] ?? "").toLowerCase();
  if (!GRPC_CONTENT_TYPES.has(type)) return false;
  return readableEncoding(req, "grpc-encoding");
}

/** Headers of a status: `grpc-status` and, unless OK, the spec-encoded `grpc-message`. */
function statusHeaders(err: ConnectError | undefined): OutgoingHttpHeaders {
  if (err === undefined) return { "grpc-status": "0" };
  return { "grpc-status": String(err.code), "grpc-message": encodeGrpcMessage(err.rawMessage) };
}

/** gRPC: `grpc-timeout`, the status in HTTP/2 trailers (after the headers when none were sent). */
function grpcProtocol(contentType: string): FastProtocol {
  return {
    contentType,
    encodingHeader: "grpc-encoding",
    timeout: (req) => parseTimeout(header(req, "grpc-timeout"), Number.MAX_SAFE_INTEGER),
    finish(res, err, headersSent) {
      const r = res as http2.Http2ServerResponse;
      if (!headersSent) r.writeHead(200, { "content-type": contentType });
      r.addTrailers(statusHeaders(err));
      r.end();
    },
  };
}

/**
 * Serves gRPC GetFlows over HTTP/2 with the shared stream writer
 * ({@link serveFastGetFlows}): statuses in trailers with spec-encoded grpc-message, the
 * response's content type the request's.
 */
export function serveGrpcGetFlows(
  deps: FastStreamDeps,
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
): Promise<void> {
  return serveFastGetFlows(deps, grpcProtocol(String(req.headers["content-type"])), req, res);
}
