import type { Http2ServerRequest } from "node:http2";
import { gunzipSync } from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import { WIRE_LEN, WireReader } from "./wire.ts";

/** Path of the one method whose request carries filter lists. */
export const GET_FLOWS_PATH = "/observer.Observer/GetFlows";

/** GetFlowsRequest field numbers of `blacklist` and `whitelist`. */
const BLACKLIST_FIELD = 5;
const WHITELIST_FIELD = 6;

/**
 * The error for a request with more than `max` filters, or undefined when it has no more.
 * Each filter is tried on every event scanned, so their number bounds a request's work.
 */
export function tooManyFilters(
  whitelist: number,
  blacklist: number,
  max: number,
): ConnectError | undefined {
  const total = whitelist + blacklist;
  if (total <= max) return undefined;
  return new ConnectError(
    `too many filters: ${total} (whitelist ${whitelist}, blacklist ${blacklist}); ` +
      `this server accepts at most ${max} per request`,
    Code.InvalidArgument,
  );
}

/** Counts the filters of an encoded GetFlowsRequest by walking its top-level fields only. */
export function countFiltersBinary(msg: Uint8Array): { whitelist: number; blacklist: number } {
  const r = new WireReader(msg, 0, msg.length);
  let whitelist = 0;
  let blacklist = 0;
  while (r.pos < msg.length) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if ((tag & 7) === WIRE_LEN && field === WHITELIST_FIELD) whitelist++;
    else if ((tag & 7) === WIRE_LEN && field === BLACKLIST_FIELD) blacklist++;
    r.skip(tag & 7);
  }
  return { whitelist, blacklist };
}

/** Counts the filters of a GetFlowsRequest in proto3 JSON. */
function countFiltersJson(msg: Uint8Array): { whitelist: number; blacklist: number } {
  const obj: unknown = JSON.parse(new TextDecoder().decode(msg));
  const len = (v: unknown): number => (Array.isArray(v) ? v.length : 0);
  if (typeof obj !== "object" || obj === null) return { whitelist: 0, blacklist: 0 };
  const o = obj as Record<string, unknown>;
  return { whitelist: len(o.whitelist), blacklist: len(o.blacklist) };
}

/**
 * Checks the filter count of every enveloped message in a GetFlows request body (gRPC,
 * gRPC-Web and Connect streaming all frame messages as flags byte + 4-byte length) before
 * it is handed on: decoding a FlowFilter costs ~50 µs and ~30 KiB, so a 4 MiB request of
 * 2-byte empty filters would otherwise cost a minute of blocked event loop and gigabytes
 * before any handler could refuse it. Messages that do not parse are handed on unchecked
 * (the decoder reports them); larger than `maxBytes` ones too (the size cap refuses them).
 */
export async function* checkedBody(
  body: AsyncIterable<Uint8Array>,
  json: boolean,
  maxFilters: number,
  maxBytes: number,
): AsyncGenerator<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  /** Bytes the held data must reach before the next envelope can be checked. */
  let need = 5;
  let passthrough = false;
  for await (const chunk of body) {
    if (passthrough) {
      yield chunk;
      continue;
    }
    parts.push(chunk);
    size += chunk.length;
    if (size < need) continue;
    const all = concat(parts.splice(0), size);
    size = 0;
    let at = 0;
    for (;;) {
      if (all.length - at < 5) {
        need = 5;
        break;
      }
      const length = new DataView(all.buffer, all.byteOffset + at + 1, 4).getUint32(0);
      if (length > maxBytes) {
        passthrough = true; // the size cap ends the call
        break;
      }
      if (all.length - at - 5 < length) {
        need = 5 + length;
        break;
      }
      checkMessage(all.subarray(at + 5, at + 5 + length), all[at] ?? 0, json, maxFilters, maxBytes);
      at += 5 + length;
    }
    if (passthrough) {
      yield all;
      continue;
    }
    if (at > 0) yield all.subarray(0, at);
    if (at < all.length) {
      parts.push(all.subarray(at));
      size = all.length - at;
    }
  }
  if (size > 0) yield concat(parts, size);
}

function checkMessage(
  data: Uint8Array,
  flags: number,
  json: boolean,
  maxFilters: number,
  maxBytes: number,
): void {
  let msg = data;
  let counts: { whitelist: number; blacklist: number };
  try {
    if ((flags & 1) === 1) msg = gunzipSync(data, { maxOutputLength: maxBytes });
    counts = json ? countFiltersJson(msg) : countFiltersBinary(msg);
  } catch {
    return; // not parseable here: the decoder reports it with its own error
  }
  const err = tooManyFilters(counts.whitelist, counts.blacklist, maxFilters);
  if (err) throw err;
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1 && parts[0] !== undefined) return parts[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Makes a GetFlows request's body refuse, with InvalidArgument, any message carrying more
 * than `maxFilters` filters before the RPC framework decodes it. Other requests are left
 * alone. Works by replacing the request's async iterator, which is how connect-node reads
 * the body.
 */
export function guardRequest(req: Http2ServerRequest, maxFilters: number, maxBytes: number): void {
  if (req.method !== "POST" || req.url?.split("?", 1)[0] !== GET_FLOWS_PATH) return;
  const json = /[+/]json\b/.test(String(req.headers["content-type"] ?? ""));
  const iterate = req[Symbol.asyncIterator].bind(req) as () => AsyncIterator<Uint8Array>;
  const source: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: iterate };
  Object.defineProperty(req, Symbol.asyncIterator, {
    value: () => checkedBody(source, json, maxFilters, maxBytes)[Symbol.asyncIterator](),
    configurable: true,
  });
}
