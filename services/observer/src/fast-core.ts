import type * as http from "node:http";
import type * as http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { rpcCodeLabel } from "@periscope/model";
import {
  type GetFlowsRequest,
  GetFlowsRequestSchema,
  GetFlowsResponseSchema,
} from "@periscope/proto";
import type { Counter } from "prom-client";
import type { AuthFailure } from "./access.ts";
import { StoredEvent, timestampNs } from "./event.ts";
import type { ObserverMetrics } from "./metrics.ts";
import {
  type FlowAnswer,
  flowAnswers,
  type GetFlowsPlan,
  type ObserverDeps,
  planGetFlows,
} from "./observer.ts";
import { type EventQuery, SCAN_SLICE_MS, ScanSlicer, startIndex } from "./query.ts";
import { countFiltersBinary, tooManyFilters } from "./request-guard.ts";
import { RingReader } from "./ring.ts";
import type { FlowStore } from "./store.ts";
import type { StreamSlots } from "./stream-slots.ts";

/** Size of one write: many length-prefixed messages go out in one write. */
export const WRITE_CHUNK_BYTES = 64 * 1024;

/**
 * Most bytes one stream may have queued towards a client that does not read; beyond it
 * the stream stops reading the ring until the client takes them, and a client lapped by
 * the ring writer meanwhile gets a LostEvent with the exact count when it reads again.
 */
export const MAX_QUEUED_BYTES = 256 * 1024;

/** What the GetFlows stream writers need. */
export interface FastStreamDeps {
  readonly observer: ObserverDeps;
  readonly metrics: ObserverMetrics;
  readonly slots: StreamSlots;
  /** Largest request message accepted, bytes. */
  readonly maxRequestBytes: number;
  /** Checks the `authorization` header when the server requires credentials. */
  readonly auth?:
    | {
        check(header: string | null): Promise<{ reason: AuthFailure; message: string } | undefined>;
        readonly failures: Counter<"reason">;
      }
    | undefined;
}

/** A request of either HTTP version. */
export type FastRequest = http.IncomingMessage | http2.Http2ServerRequest;
/** A response of either HTTP version. */
export type FastResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Writes the response's status line and headers (both versions take the same arguments). */
export function writeHead(res: FastResponse, headers: http.OutgoingHttpHeaders): void {
  (res as http.ServerResponse).writeHead(200, headers);
}

/**
 * What differs between the protocols that stream GetFlows as length-prefixed messages
 * (gRPC, gRPC-Web, Connect): headers read, the response's content type and how the
 * stream ends with its status. The messages in between are framed the same way by all.
 */
export interface FastProtocol {
  /** Content type of the response. */
  readonly contentType: string;
  /** Header naming the request's compression ("grpc-encoding", "connect-content-encoding"). */
  readonly encodingHeader: string;
  /** Bodies both ways are base64 text (grpc-web-text), written as one padded run per write. */
  readonly text?: boolean;
  /** The request's deadline, ms, from its timeout header; error when the header is bad. */
  timeout(req: FastRequest): { timeoutMs?: number | undefined; error?: ConnectError | undefined };
  /**
   * Ends the response with its status (`err` undefined: OK). The headers are already
   * written when `headersSent`; else the protocol writes them (status 200).
   */
  finish(res: FastResponse, err: ConnectError | undefined, headersSent: boolean): void;
}

/** The value of header `name`, or null. */
export function header(req: FastRequest, name: string): string | null {
  const v = req.headers[name];
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(", ") : String(v);
}

/** True when `req`'s messages are uncompressed or gzip (what the writers read themselves). */
export function readableEncoding(req: FastRequest, encodingHeader: string): boolean {
  const enc = req.headers[encodingHeader];
  return enc === undefined || enc === "identity" || enc === "gzip";
}

/** Writes to a response of either HTTP version, with the amount it has queued. */
interface ResponseSink {
  /** Writes `chunk`; false once the response's queue is above its high-water mark. */
  write(chunk: Uint8Array): boolean;
  /** Bytes written but not yet taken by the connection. */
  readonly queued: number;
  /** Whether the response can no longer be written to. */
  readonly gone: boolean;
  on(event: "drain" | "close", fn: () => void): void;
  off(event: "drain" | "close", fn: () => void): void;
}

/** `sink` writing each chunk as base64 text, padded on its own (grpc-web-text). */
function base64Sink(sink: ResponseSink): ResponseSink {
  return {
    write: (chunk) => {
      const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      return sink.write(Buffer.from(bytes.toString("base64"), "latin1"));
    },
    get queued() {
      return sink.queued;
    },
    get gone() {
      return sink.gone;
    },
    on: (event, fn) => sink.on(event, fn),
    off: (event, fn) => sink.off(event, fn),
  };
}

/**
 * Decodes base64 text that may be several padded runs one after the other (grpc-web-text
 * bodies), ignoring whitespace; InvalidArgument when it is not base64.
 */
export function decodeBase64Runs(text: string): Buffer {
  const clean = text.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/=]*$/.test(clean)) {
    throw new ConnectError("protocol error: request body is not base64", Code.InvalidArgument);
  }
  const runs = clean.match(/[^=]+=*/g) ?? [];
  return Buffer.concat(runs.map((run) => Buffer.from(run, "base64")));
}

function responseSink(res: FastResponse): ResponseSink {
  if ("stream" in res) {
    // HTTP/2: the stream holds the queue and reports drain and close.
    const stream = res.stream;
    return {
      write: (chunk) => res.write(chunk),
      get queued() {
        return stream.writableLength;
      },
      get gone() {
        return stream.closed || stream.destroyed;
      },
      on: (event, fn) => stream.on(event, fn),
      off: (event, fn) => stream.off(event, fn),
    };
  }
  return {
    write: (chunk) => res.write(chunk),
    get queued() {
      return res.writableLength;
    },
    get gone() {
      return res.destroyed || res.writableEnded || res.socket?.destroyed === true;
    },
    on: (event, fn) => res.on(event, fn),
    off: (event, fn) => res.off(event, fn),
  };
}

/**
 * Collects length-prefixed messages into {@link WRITE_CHUNK_BYTES} writes. A write is made
 * when the chunk is full and, for whatever is left, one event-loop turn after the first
 * message of a chunk (so a caught-up follower gets each message promptly).
 */
export class ChunkWriter {
  #buf = Buffer.allocUnsafe(WRITE_CHUNK_BYTES);
  #len = 0;
  #scheduled: ReturnType<typeof setImmediate> | undefined;
  #drained: { promise: Promise<void>; resolve: () => void } | undefined;
  /** More than MAX_QUEUED_BYTES were queued at the last write, and no drain since. */
  #full = false;
  readonly #sink: ResponseSink;
  readonly #closed: AbortSignal;
  readonly #onDrain = (): void => {
    this.#full = false;
    this.#wake();
  };

  constructor(sink: ResponseSink, closed: AbortSignal) {
    this.#sink = sink;
    this.#closed = closed;
    sink.on("drain", this.#onDrain);
    closed.addEventListener("abort", () => this.#wake(), { once: true });
  }

  /** Appends one message with `flags` (0: an uncompressed message). */
  push(msg: Uint8Array, flags = 0): void {
    const size = 5 + msg.length;
    if (size > WRITE_CHUNK_BYTES - this.#len) this.flush();
    if (size > WRITE_CHUNK_BYTES) {
      const big = Buffer.allocUnsafe(size);
      big[0] = flags;
      big.writeUInt32BE(msg.length, 1);
      big.set(msg, 5);
      this.#write(big);
      return;
    }
    const buf = this.#buf;
    const at = this.#len;
    buf[at] = flags;
    buf.writeUInt32BE(msg.length, at + 1);
    buf.set(msg, at + 5);
    this.#len = at + size;
    this.#scheduled ??= setImmediate(() => {
      this.#scheduled = undefined;
      this.flush();
    });
  }

  /** Writes what is collected. */
  flush(): void {
    if (this.#scheduled !== undefined) {
      clearImmediate(this.#scheduled);
      this.#scheduled = undefined;
    }
    if (this.#len === 0) return;
    const out = this.#buf.subarray(0, this.#len);
    this.#buf = Buffer.allocUnsafe(WRITE_CHUNK_BYTES);
    this.#len = 0;
    this.#write(out);
  }

  #write(chunk: Buffer): void {
    if (this.#closed.aborted) return;
    // Above the response's high-water mark write() returns false and "drain" follows.
    if (!this.#sink.write(chunk)) this.#full = this.#sink.queued > MAX_QUEUED_BYTES;
  }

  /** True while more than {@link MAX_QUEUED_BYTES} wait for the client. */
  get full(): boolean {
    return this.#full && !this.#closed.aborted;
  }

  /** Resolves once the queue drained or the stream closed. */
  async drained(): Promise<void> {
    while (this.full) {
      this.#drained ??= Promise.withResolvers<void>();
      await this.#drained.promise;
    }
  }

  /** Stops listening to the response. */
  detach(): void {
    this.#sink.off("drain", this.#onDrain);
  }

  #wake(): void {
    const d = this.#drained;
    this.#drained = undefined;
    d?.resolve();
  }
}

/**
 * Reads the request body, refusing more than `max` bytes with ResourceExhausted: the rest
 * of an oversized body is not read (the stream is reset once the answer is sent).
 */
function readBody(req: FastRequest, max: number, closed: AbortSignal): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const done = (err?: ConnectError): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      closed.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve(Buffer.concat(parts, size));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      parts.push(chunk);
      if (size > max + 5) {
        req.pause();
        done(
          new ConnectError(
            `message size is larger than configured readMaxBytes ${max}`,
            Code.ResourceExhausted,
          ),
        );
      }
    };
    const onEnd = (): void => done();
    const onError = (err: Error): void =>
      done(new ConnectError(`reading the request: ${err.message}`, Code.Canceled));
    // A client that goes away (or a deadline that passes) before its request is complete.
    const onAbort = (): void => done(ConnectError.from(closed.reason));
    if (closed.aborted) return onAbort();
    closed.addEventListener("abort", onAbort, { once: true });
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/** The one enveloped request message of `body`, inflated when compressed. */
function unwrapRequest(
  body: Buffer,
  gzip: boolean,
  max: number,
  encodingHeader: string,
): Uint8Array {
  if (body.length < 5) {
    throw new ConnectError("protocol error: missing request message", Code.InvalidArgument);
  }
  const flags = body[0] ?? 0;
  const length = body.readUInt32BE(1);
  if (length > max) {
    throw new ConnectError(
      `message size ${length} is larger than configured readMaxBytes ${max}`,
      Code.ResourceExhausted,
    );
  }
  if (body.length !== 5 + length) {
    throw new ConnectError(
      "protocol error: expected exactly one request message",
      Code.InvalidArgument,
    );
  }
  const data = body.subarray(5);
  if ((flags & 1) === 0) return data;
  if (!gzip) {
    throw new ConnectError(
      `protocol error: received compressed message without ${encodingHeader}`,
      Code.Internal,
    );
  }
  try {
    return gunzipSync(data, { maxOutputLength: max });
  } catch (err) {
    throw new ConnectError(`decompress gzip: ${String(err)}`, Code.InvalidArgument);
  }
}

/**
 * Serves GetFlows straight from the stored events in `proto`'s framing: each event's
 * received bytes are framed and collected into {@link WRITE_CHUNK_BYTES} writes instead of
 * one serialize + envelope + write per message; a masked request's flows are encoded one
 * by one. The answers come from {@link flowAnswers}, as for the Connect service, and what
 * happens around them is what the Connect handler and the server's interceptors do:
 * credentials checked (Unauthenticated, counted), the stream cap (ResourceExhausted,
 * counted), the request's timeout, the request size cap, the filter cap before decoding,
 * requests_total and active_streams, the status as the protocol ends a stream. A client
 * that stops reading holds at most {@link MAX_QUEUED_BYTES}; it never slows ingest or
 * other streams. Works over HTTP/1.1 and HTTP/2 alike.
 */
export async function serveFastGetFlows(
  deps: FastStreamDeps,
  proto: FastProtocol,
  req: FastRequest,
  res: FastResponse,
): Promise<void> {
  const { metrics } = deps;
  const raw = responseSink(res);
  const sink = proto.text ? base64Sink(raw) : raw;
  const closed = new AbortController();
  const onClose = (): void => closed.abort(new ConnectError("client went away", Code.Canceled));
  sink.on("close", onClose);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let release: (() => void) | undefined;
  let headersSent = false;
  let code: string;
  try {
    const timeout = proto.timeout(req);
    if (timeout.error) throw timeout.error;
    if (timeout.timeoutMs !== undefined) {
      timer = setTimeout(
        () =>
          closed.abort(
            new ConnectError(
              `the operation timed out after ${timeout.timeoutMs} ms`,
              Code.DeadlineExceeded,
            ),
          ),
        timeout.timeoutMs,
      );
    }
    const body = unwrapRequest(
      proto.text
        ? decodeBase64Runs(
            (
              await readBody(req, Math.ceil((deps.maxRequestBytes + 5) / 3) * 4, closed.signal)
            ).toString("latin1"),
          )
        : await readBody(req, deps.maxRequestBytes, closed.signal),
      req.headers[proto.encodingHeader] === "gzip",
      deps.maxRequestBytes,
      proto.encodingHeader,
    );
    const counts = countFiltersBinary(body);
    const tooMany = tooManyFilters(
      counts.whitelist,
      counts.blacklist,
      deps.observer.maxFilters ?? Number.POSITIVE_INFINITY,
    );
    if (tooMany) throw tooMany;
    let request: ReturnType<typeof fromBinary<typeof GetFlowsRequestSchema>>;
    try {
      request = fromBinary(GetFlowsRequestSchema, body);
    } catch (err) {
      throw new ConnectError(`parse binary: ${String(err)}`, Code.Internal);
    }
    if (deps.auth) {
      const refused = await deps.auth.check(header(req, "authorization"));
      if (refused) {
        deps.auth.failures.inc({ reason: refused.reason });
        throw new ConnectError(refused.message, Code.Unauthenticated);
      }
    }
    release = deps.slots.tryAcquire();
    if (release === undefined) {
      metrics.streamsRefused.inc();
      throw deps.slots.refusal();
    }
    const plan = planGetFlows(deps.observer, request);
    writeHead(res, { "content-type": proto.contentType });
    headersSent = true;
    metrics.activeStreams.inc();
    const out = new ChunkWriter(sink, closed.signal);
    try {
      // A follow stream that starts in the ring (no since, which may reach into the
      // flows stream's history) is read from the ring directly; anything else through
      // the query path all transports share.
      if (request.follow && request.since === undefined) {
        await followRing(deps.observer.store, request, plan, out, closed.signal);
      } else {
        await pump(flowAnswers(deps.observer, request, closed.signal, plan), out);
      }
    } finally {
      out.detach();
      metrics.activeStreams.dec();
    }
    if (closed.signal.aborted) throw closed.signal.reason;
    code = "ok";
    if (!sink.gone) proto.finish(res, undefined, true);
  } catch (thrown) {
    const err = ConnectError.from(thrown);
    code = rpcCodeLabel(err.code);
    if (!sink.gone) {
      // The status ends the stream as the Connect handler ends it (also before any
      // message): clients read it the same way from both.
      proto.finish(res, err, headersSent);
      // The rest of a body not read to its end (too large) is read and dropped.
      if (!req.complete) req.resume();
    }
  } finally {
    clearTimeout(timer);
    release?.();
    sink.off("close", onClose);
  }
  metrics.requests.inc({ method: "GetFlows", code });
}

/** The bytes of one answer. */
function answerBytes(a: FlowAnswer): Uint8Array {
  return a instanceof StoredEvent ? a.bytes() : toBinary(GetFlowsResponseSchema, a);
}

/** Frames every answer into `out`, pausing while the client does not take what was sent. */
async function pump(
  answers: AsyncGenerator<FlowAnswer, void, undefined>,
  out: ChunkWriter,
): Promise<void> {
  try {
    for await (const a of answers) {
      out.push(answerBytes(a));
      if (out.full) {
        out.flush();
        await out.drained();
      }
    }
  } finally {
    out.flush();
  }
}

/** Entries read between two looks at the clock while draining the ring. */
const ENTRIES_PER_CLOCK_READ = 256;

/**
 * A follow stream read from the ring without a generator step per event: whatever the
 * ring holds past the cursor is matched and framed in one synchronous pass (ending after
 * {@link SCAN_SLICE_MS} ms, so other streams, ingest and /healthz keep their turn), then it
 * waits for the next write or for the client to take what was queued. The same selection
 * as the query path's follow: the last `number` matching events first, lost events
 * unfiltered, an event past `until` ends the stream, a lapped reader is told the count.
 */
async function followRing(
  store: FlowStore,
  req: EventQuery & Pick<GetFlowsRequest, "whitelist" | "blacklist">,
  plan: GetFlowsPlan,
  out: ChunkWriter,
  signal: AbortSignal,
): Promise<void> {
  const ring = store.ring;
  const untilNs = timestampNs(req.until);
  // Walking back for the last `number` matches skips, undecoded, what the columns rule out.
  const filtered = req.whitelist.length + req.blacklist.length > 0;
  const pre = filtered ? store.prefilter(req.whitelist, req.blacklist) : undefined;
  const reader = new RingReader(
    ring,
    await startIndex(ring, req, plan.match, new ScanSlicer(), pre),
  );
  for (;;) {
    if (signal.aborted) return;
    const sliceEnd = performance.now() + SCAN_SLICE_MS;
    let n = 0;
    let caughtUp = false;
    for (;;) {
      const step = reader.next();
      if (step === undefined) {
        caughtUp = true;
        break;
      }
      if (step.kind === "lost") out.push(answerBytes(plan.lost(step.count)));
      else {
        const ev = step.value;
        if (ev.kind === "lostEvents") out.push(ev.bytes());
        else {
          if (untilNs !== undefined && ev.ns > untilNs) {
            out.flush();
            return;
          }
          if (plan.match(ev)) {
            const a = plan.answer(ev);
            if (a !== undefined) out.push(answerBytes(a));
          }
        }
      }
      if (out.full) break;
      if (++n % ENTRIES_PER_CLOCK_READ === 0 && performance.now() >= sliceEnd) break;
    }
    if (out.full) {
      out.flush();
      await out.drained();
    } else if (caughtUp) {
      out.flush();
      if (ring.closed) return;
      await ring.waitFor(reader.cursor, signal);
    } else {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}
