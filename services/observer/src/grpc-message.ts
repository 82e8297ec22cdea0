import type { OutgoingHttpHeaders } from "node:http";
import type * as http2 from "node:http2";

const encoder = new TextEncoder();

/**
 * Percent-encodes a status message the way the gRPC spec asks for grpc-message:
 * only bytes outside printable ASCII (0x20–0x7E) and "%" itself, as UTF-8.
 */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of encoder.encode(message)) {
    if (byte >= 0x20 && byte <= 0x7e && byte !== 0x25) out += String.fromCharCode(byte);
    else out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * Re-encodes a grpc-message value that was percent-encoded with encodeURIComponent
 * (as @connectrpc/connect does) with {@link encodeGrpcMessage}: grpc-js and grpc-go
 * decode only what the spec encodes, so "%3A" and "%2F" would reach users verbatim.
 * A value that does not decode is left alone.
 */
export function reencodeGrpcMessage(value: string): string {
  try {
    return encodeGrpcMessage(decodeURIComponent(value));
  } catch {
    return value;
  }
}

function fixHeaders(headers: unknown): unknown {
  if (typeof headers !== "object" || headers === null || Array.isArray(headers)) return headers;
  const h = headers as OutgoingHttpHeaders;
  const msg = h["grpc-message"];
  if (typeof msg !== "string") return headers;
  return { ...h, "grpc-message": reencodeGrpcMessage(msg) };
}

/**
 * Makes `res` send grpc-message with the spec's encoding, in the headers of a
 * trailers-only response and in trailers alike. Only the values handed to
 * writeHead and addTrailers change; everything else passes through.
 */
export function specGrpcMessages(res: http2.Http2ServerResponse): void {
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => http2.Http2ServerResponse;
  const addTrailers = res.addTrailers.bind(res);
  res.writeHead = ((...args: unknown[]) =>
    writeHead(...args.map(fixHeaders))) as typeof res.writeHead;
  res.addTrailers = (headers) => addTrailers(fixHeaders(headers) as OutgoingHttpHeaders);
}
