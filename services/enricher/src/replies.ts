import type { Flow } from "@periscope/proto";

/** ICMP types that are requests/replies by definition (RFC 792, RFC 4443). */
const ICMP_ECHO = {
  ICMPv4: { request: 8, reply: 0 },
  ICMPv6: { request: 128, reply: 129 },
} as const;

interface Conn {
  /** "ip|port" of the side that started the connection. */
  initiator: string;
  lastSeenMs: number;
}

/** Options for {@link ReplyTracker}. */
export interface ReplyTrackerOptions {
  /** Most connections remembered; the least recently seen go first. Default 65536. */
  maxEntries?: number;
  /** A connection not seen for this long is forgotten. Default 5 minutes. */
  idleMs?: number;
}

/**
 * Sets `flow.isReply` the way conntrack would: the side that opened a
 * connection sends requests, the other side replies. TCP: SYN opens, SYN-ACK
 * answers; UDP/SCTP: the first packet seen opens; ICMP echo request/reply by
 * type. A TCP connection whose start was not seen stays unknown (isReply
 * unset), as do ICMP errors and non-IP traffic.
 *
 * State is per enricher, so every packet of a connection must reach the same
 * enricher for the answer to be right (one enricher, or partitioned subjects).
 */
export class ReplyTracker {
  readonly #conns = new Map<string, Conn>();
  readonly #max: number;
  readonly #idleMs: number;

  constructor(opts: ReplyTrackerOptions = {}) {
    this.#max = opts.maxEntries ?? 65536;
    this.#idleMs = opts.idleMs ?? 5 * 60_000;
  }

  /** Connections currently remembered. */
  get size(): number {
    return this.#conns.size;
  }

  /** Classifies `flow` in place and returns what it set. */
  classify(flow: Flow, nowMs: number): boolean | undefined {
    const reply = this.#decide(flow, nowMs);
    if (reply !== undefined) flow.isReply = reply;
    return reply;
  }

  #decide(flow: Flow, nowMs: number): boolean | undefined {
    const src = flow.IP?.source;
    const dst = flow.IP?.destination;
    const l4 = flow.l4?.protocol;
    if (!src || !dst || !l4 || l4.case === undefined) return undefined;
    if (l4.case === "ICMPv4" || l4.case === "ICMPv6") {
      const echo = ICMP_ECHO[l4.case];
      if (l4.value.type === echo.request) return false;
      if (l4.value.type === echo.reply) return true;
      return undefined;
    }
    if (l4.case !== "TCP" && l4.case !== "UDP" && l4.case !== "SCTP") return undefined;
    const from = `${src}|${l4.value.sourcePort}`;
    const to = `${dst}|${l4.value.destinationPort}`;
    const key = from < to ? `${l4.case}|${from}|${to}` : `${l4.case}|${to}|${from}`;
    let conn = this.#conns.get(key);
    if (conn && nowMs - conn.lastSeenMs > this.#idleMs) {
      this.#conns.delete(key);
      conn = undefined;
    }
    if (l4.case === "TCP" && l4.value.flags?.SYN) {
      // A SYN (re)opens the connection; a SYN-ACK answers one opened by the other side.
      conn = { initiator: l4.value.flags.ACK ? to : from, lastSeenMs: nowMs };
    } else if (!conn) {
      if (l4.case === "TCP") return undefined;
      conn = { initiator: from, lastSeenMs: nowMs };
    }
    conn.lastSeenMs = nowMs;
    this.#remember(key, conn);
    return conn.initiator !== from;
  }

  #remember(key: string, conn: Conn): void {
    this.#conns.delete(key); // re-insert: Map order is our recency order
    this.#conns.set(key, conn);
    while (this.#conns.size > this.#max) {
      const oldest = this.#conns.keys().next().value;
      if (oldest === undefined) break;
      this.#conns.delete(oldest);
    }
  }
}
