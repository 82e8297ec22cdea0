import { L7ParseError } from "./errors.ts";

/** Longest message head (start line + headers) read, bytes; a longer one is malformed. */
export const HTTP_MAX_HEAD = 8192;
/** Header fields kept from one head at most; the rest are skipped. */
export const HTTP_MAX_HEADERS = 64;

/** RFC 9110 token characters (methods, header names). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const VERSION = /^HTTP\/1\.[01]$/;
const TLS_HANDSHAKE = 0x16;
const HTTP2_PREFACE = "PRI * HTTP/2.0";

/** What a request and a response head have in common. */
interface HeadCommon {
  /** "HTTP/1.0" or "HTTP/1.1". */
  protocol: string;
  /** Header fields in order, names as sent. */
  headers: [name: string, value: string][];
  /** Offset just after the blank line that ends the head. */
  headEnd: number;
  /** Content-Length, when given. */
  contentLength?: number;
  /** Transfer-Encoding ends in chunked. */
  chunked: boolean;
}

/** A request line and its headers. */
export interface HttpRequestHead extends HeadCommon {
  kind: "request";
  method: string;
  /** Request target as sent (origin form "/p?q", absolute form, "*" or authority). */
  target: string;
}

/** A status line and its headers. */
export interface HttpResponseHead extends HeadCommon {
  kind: "response";
  code: number;
}

/** Either head. */
export type HttpHead = HttpRequestHead | HttpResponseHead;

function fail(reason: "malformed" | "tls" | "http2", message: string): never {
  throw new L7ParseError("http", reason, message);
}

/** Offset after the first blank line in `bytes[start, stop)`, or -1. */
function findHeadEnd(bytes: Uint8Array, start: number, stop: number): number {
  for (let i = bytes.indexOf(0x0a, start); i >= 0 && i < stop; i = bytes.indexOf(0x0a, i + 1)) {
    if (bytes[i + 1] === 0x0a && i + 1 < stop) return i + 2;
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a && i + 2 < stop) return i + 3;
  }
  return -1;
}

/**
 * Bytes as text, one character per byte. WHATWG's "latin1" is windows-1252, so bytes
 * 0x80–0x9f of longer runs read as its characters; heads are ASCII in practice.
 */
const LATIN1 = new TextDecoder("windows-1252");

function latin1(bytes: Uint8Array, start: number, end: number): string {
  if (end - start < 24) {
    let s = "";
    for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i] ?? 0);
    return s;
  }
  return LATIN1.decode(bytes.subarray(start, end));
}

/**
 * Parses an HTTP/1.x message head starting at `bytes[start]` (a request when
 * `kind` is "request", else a response). Returns undefined when the head's
 * blank line is not within `bytes[start, end)` yet (more bytes may finish it).
 * @throws L7ParseError `tls` for a TLS record, `http2` for the HTTP/2 preface,
 *   `malformed` for anything else that is not an HTTP/1.x head (also a head
 *   longer than HTTP_MAX_HEAD).
 */
export function parseHttpHead(
  bytes: Uint8Array,
  kind: "request" | "response",
  start = 0,
  end: number = bytes.length,
): HttpHead | undefined {
  const stop = Math.min(end, bytes.length);
  if (stop <= start) return undefined;
  if (bytes[start] === TLS_HANDSHAKE && (bytes[start + 1] === 0x03 || stop - start < 2)) {
    fail("tls", "TLS handshake record");
  }
  const first = latin1(bytes, start, Math.min(stop, start + HTTP2_PREFACE.length));
  if (HTTP2_PREFACE.startsWith(first) && first.length >= 3) fail("http2", "HTTP/2 preface");
  const headEnd = findHeadEnd(bytes, start, Math.min(stop, start + HTTP_MAX_HEAD));
  if (headEnd < 0) {
    // Fail early on a first line that cannot become a start line.
    checkPrefix(bytes, kind, start, Math.min(stop, start + HTTP_MAX_HEAD));
    if (stop - start >= HTTP_MAX_HEAD) fail("malformed", `head longer than ${HTTP_MAX_HEAD} bytes`);
    return undefined;
  }
  const lines = latin1(bytes, start, headEnd).split("\n");
  const startLine = (lines[0] ?? "").replace(/\r$/, "");
  const common: HeadCommon = { protocol: "", headers: [], headEnd, chunked: false };
  for (let i = 1; i < lines.length; i++) {
    const line = (lines[i] ?? "").replace(/\r$/, "");
    if (line === "") break;
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) fail("malformed", `header line ${JSON.stringify(line.slice(0, 40))}`);
    const value = line.slice(colon + 1).trim();
    if (common.headers.length < HTTP_MAX_HEADERS) common.headers.push([name, value]);
    readFraming(common, name.toLowerCase(), value);
  }
  const parts = startLine.split(" ");
  if (kind === "request") {
    const [method = "", target = "", protocol = ""] = parts;
    if (parts.length !== 3 || !TOKEN.test(method) || target === "" || !VERSION.test(protocol)) {
      fail("malformed", `request line ${JSON.stringify(startLine.slice(0, 60))}`);
    }
    return { ...common, kind, protocol, method, target };
  }
  const [protocol = "", code = ""] = parts;
  if (!VERSION.test(protocol) || !/^[1-9][0-9]{2}$/.test(code)) {
    fail("malformed", `status line ${JSON.stringify(startLine.slice(0, 60))}`);
  }
  return { ...common, kind, protocol, code: Number(code) };
}

/** Content-Length and Transfer-Encoding of a head. */
function readFraming(head: HeadCommon, lowerName: string, value: string): void {
  if (lowerName === "content-length") {
    if (!/^[0-9]{1,15}$/.test(value)) fail("malformed", `Content-Length ${JSON.stringify(value)}`);
    const n = Number(value);
    if (head.contentLength !== undefined && head.contentLength !== n) {
      fail("malformed", "conflicting Content-Length values");
    }
    head.contentLength = n;
  } else if (lowerName === "transfer-encoding") {
    head.chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
  }
}

/** Throws when the bytes so far cannot be the start of a head of this kind. */
function checkPrefix(
  bytes: Uint8Array,
  kind: "request" | "response",
  start: number,
  stop: number,
): void {
  const text = latin1(bytes, start, Math.min(stop, start + 16));
  if (kind === "response") {
    const want = "HTTP/1.";
    const n = Math.min(want.length, text.length);
    if (text.slice(0, n) !== want.slice(0, n)) fail("malformed", "no HTTP/1.x status line");
    return;
  }
  const space = text.indexOf(" ");
  const method = space < 0 ? text : text.slice(0, space);
  if (method !== "" && !TOKEN.test(method)) fail("malformed", "no HTTP/1.x request line");
  if (space === 0 || (space < 0 && text.length >= 16)) {
    fail("malformed", "no HTTP/1.x request line");
  }
}

/**
 * Whether the bytes at `start` look like the beginning of a head of this kind,
 * cheaply (a method token and a space, or "HTTP/1."). Used to find the next
 * message after a body whose end is unknown.
 */
export function looksLikeHttpStart(
  bytes: Uint8Array,
  kind: "request" | "response",
  start: number,
  end: number,
): boolean {
  const text = latin1(bytes, start, Math.min(end, bytes.length, start + 16));
  if (kind === "response") return text.startsWith("HTTP/1.");
  const space = text.indexOf(" ");
  return (
    space > 0 &&
    TOKEN.test(text.slice(0, space)) &&
    text.slice(0, space).toUpperCase() === text.slice(0, space)
  );
}

/** Whether a response to `method` with this status carries no body (RFC 9112 6.3). */
export function responseHasNoBody(method: string | undefined, code: number): boolean {
  return method === "HEAD" || (code >= 100 && code < 200) || code === 204 || code === 304;
}
