import {
  HTTP_MAX_HEAD,
  type HttpHead,
  L7ParseError,
  type L7UnparsedReason,
  looksLikeHttpStart,
  parseHttpHead,
  responseHasNoBody,
} from "@periscope/flow";
import type { Segment } from "./segment.ts";

/** A head found in one direction of a connection, with the time of the packet that completed it. */
export interface FoundHead {
  head: HttpHead;
  timeNs: bigint;
}

/** What reading one segment gave. */
export interface HttpReadResult {
  heads: FoundHead[];
  /** Why bytes that should have started a message could not be read, if so. */
  unparsed?: L7UnparsedReason;
}

/**
 * Reads the HTTP/1.x heads of one direction of a connection from its
 * segments in sequence order: a head split over segments is put back
 * together (up to HTTP_MAX_HEAD bytes); bodies with a Content-Length are
 * skipped by length; after a body of unknown length (chunked, or until close)
 * or a hole in the stream the next head is looked for at segment starts.
 */
/** Bytes of unfinished heads all directions together may hold; shared by a tracker's connections. */
export interface HeadBudget {
  readonly limit: number;
  used: number;
}

export class HttpDirection {
  /** A connection whose start was seen begins with a head; one joined later resyncs (its first segment is a gap). */
  private mode: "head" | "body" | "resync" = "head";
  private bodyLeft = 0;
  private pending: Uint8Array | undefined;
  /** Set after TLS or HTTP/2 was seen: nothing more is read from this direction. */
  private given: L7UnparsedReason | undefined;

  constructor(
    private readonly kind: "request" | "response",
    private readonly budget: HeadBudget = { limit: Number.POSITIVE_INFINITY, used: 0 },
  ) {}

  /** Gives back the bytes of an unfinished head (the connection is being forgotten). */
  release(): void {
    this.setPending(undefined);
  }

  private setPending(bytes: Uint8Array | undefined): void {
    this.budget.used -= this.pending?.length ?? 0;
    this.pending = bytes;
    this.budget.used += bytes?.length ?? 0;
  }

  /**
   * Reads a segment. `bodyOf(head)` says how many body bytes follow a head:
   * a number, or undefined when unknown.
   */
  read(seg: Segment, bodyOf: (head: HttpHead) => number | undefined): HttpReadResult {
    const out: HttpReadResult = { heads: [] };
    if (this.given !== undefined) return out;
    if (seg.gap) {
      // a head begun before the hole cannot be finished
      if (this.pending !== undefined) out.unparsed = "split";
      this.setPending(undefined);
      this.mode = "resync";
    }
    const wireEnd = seg.start + seg.wireLen;
    let p = seg.start;
    while (p < wireEnd) {
      if (this.mode === "body") {
        const skip = Math.min(this.bodyLeft, wireEnd - p);
        this.bodyLeft -= skip;
        p += skip;
        if (this.bodyLeft === 0) this.mode = "head";
        continue;
      }
      if (this.mode === "resync") {
        if (p !== seg.start || !looksLikeHttpStart(seg.bytes, this.kind, p, seg.capEnd)) break;
        this.mode = "head";
      }
      // head: needs captured bytes
      if (p >= seg.capEnd) {
        out.unparsed = "truncated";
        this.reset();
        break;
      }
      const prior = this.pending?.length ?? 0;
      const data = this.pending ? concat(this.pending, seg.bytes, p, seg.capEnd) : seg.bytes;
      const from = this.pending ? 0 : p;
      const to = this.pending ? data.length : seg.capEnd;
      let head: HttpHead | undefined;
      try {
        head = parseHttpHead(data, this.kind, from, to);
      } catch (err) {
        if (!(err instanceof L7ParseError)) throw err;
        out.unparsed = err.reason;
        if (err.reason === "tls" || err.reason === "http2") this.given = err.reason;
        this.reset();
        break;
      }
      if (head === undefined) {
        if (seg.capEnd < wireEnd) {
          out.unparsed = "truncated";
          this.reset();
        } else if (
          to - from >= HTTP_MAX_HEAD ||
          this.budget.used - prior + (to - from) > this.budget.limit
        ) {
          out.unparsed = "split";
          this.reset();
        } else {
          this.setPending(data.slice(from, to));
        }
        break;
      }
      this.setPending(undefined);
      p += head.headEnd - from - prior;
      out.heads.push({ head, timeNs: seg.timeNs });
      const body = bodyOf(head);
      if (body === undefined) this.mode = "resync";
      else if (body > 0) {
        this.mode = "body";
        this.bodyLeft = body;
      } else this.mode = "head";
      if (this.mode === "resync") break;
    }
    return out;
  }

  private reset(): void {
    this.setPending(undefined);
    this.mode = "resync";
  }
}

function concat(a: Uint8Array, b: Uint8Array, from: number, to: number): Uint8Array {
  const out = new Uint8Array(a.length + Math.max(0, to - from));
  out.set(a, 0);
  if (to > from) out.set(b.subarray(from, to), a.length);
  return out;
}

/** Body length after a request head: Content-Length, 0 without one, unknown when chunked. */
export function requestBody(head: HttpHead): number | undefined {
  if (head.chunked) return undefined;
  return head.contentLength ?? 0;
}

/** Body length after a response head to `method`: none, Content-Length, or unknown. */
export function responseBody(head: HttpHead, method: string | undefined): number | undefined {
  if (head.kind === "response" && responseHasNoBody(method, head.code)) return 0;
  if (head.chunked) return undefined;
  return head.contentLength;
}
