import {
  type DnsMessage,
  dnsRecord,
  dnsSummary,
  type HttpHead,
  httpHeader,
  httpRecord,
  httpSummary,
  L7_UNPARSED_REASONS,
  L7ParseError,
  type L7UnparsedReason,
  l7Flow,
  parseDnsMessage,
  parseDnsTcpStream,
  type TransportPayload,
} from "@periscope/flow";
import { type Flow, type HTTPHeader, L7FlowType } from "@periscope/proto";
import { BoundedMap } from "./bounded-map.ts";
import { DnsNameCache } from "./dns-cache.ts";
import { type HeadBudget, HttpDirection, requestBody, responseBody } from "./http-stream.ts";
import { type Segment, StreamPosition } from "./segment.ts";

/** Settings of L7 parsing. */
export interface L7Options {
  /** Ports whose UDP and TCP payload is parsed as DNS; empty turns DNS off. */
  dnsPorts: ReadonlySet<number>;
  /** TCP ports whose payload is parsed as HTTP/1.x; empty turns HTTP off. */
  httpPorts: ReadonlySet<number>;
  /** Lower-case names of the request headers shown in l7.http.headers. */
  httpHeaders: ReadonlySet<string>;
  /** Connections (and DNS queries awaiting an answer) held at most. */
  maxConnections?: number;
  /** A connection or query not seen for this long is forgotten, ms. */
  idleMs?: number;
  /** Addresses held in the DNS name cache at most. */
  maxDnsNames?: number;
  /** Bytes of unfinished HTTP heads held over all connections at most (default 16 MiB). */
  maxPendingHeadBytes?: number;
  /** Flow UUIDs; random v4 when absent. */
  uuid?: () => string;
}

/** Header values never shown, whatever the allow-list says (Hubble's redaction text instead). */
const SENSITIVE_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie"]);
const REDACTED = "HUBBLE_REDACTED";
/** Requests awaiting their response per connection at most (pipelining depth). */
const MAX_QUEUED_REQUESTS = 64;
/** Bytes of an unfinished DNS-over-TCP message held at most. */
const MAX_DNS_TCP_PENDING = 16384;
/** The same DNS datagram seen again within this time is the same packet at another point, ns. */
const DNS_DUPLICATE_NS = 200_000_000n;

/** Counts kept by the tracker, read by the enricher's metrics. */
export interface L7Counts {
  /** Payloads not turned into L7 flows, by protocol and reason. */
  unparsed: Record<"dns" | "http", Record<L7UnparsedReason, number>>;
  /** Responses without a request seen before them. */
  unmatched: Record<"dns" | "http", number>;
  /** Connections and pending queries forgotten because the tables were full. */
  evicted: number;
  /** L7 flows made, by protocol and kind. */
  flows: Record<"dns" | "http", { request: number; response: number }>;
}

interface PendingRequest {
  timeNs: bigint;
  method: string;
  url: string;
  protocol: string;
  headers: HTTPHeader[];
}

interface Conn {
  kind: "http" | "dns";
  pos: [StreamPosition, StreamPosition];
  http?: [HttpDirection, HttpDirection];
  queue: PendingRequest[];
  dnsBuf: [Uint8Array | undefined, Uint8Array | undefined];
  dnsBroken: [boolean, boolean];
}

/** What the tracker reads of a TCP or UDP packet besides its bytes. */
export interface L7Packet {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  tcp: boolean;
  /** TCP SYN and RST flags (false for UDP). */
  syn: boolean;
  rst: boolean;
  /** The packet's time, ns since the epoch. */
  timeNs: bigint;
}

/** The 5-tuple of a packet, as the tracker needs it. */
interface Tuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  tcp: boolean;
}

function timeNs(flow: Flow): bigint {
  return (flow.time?.seconds ?? 0n) * 1_000_000_000n + BigInt(flow.time?.nanos ?? 0);
}

function zeroReasons(): Record<L7UnparsedReason, number> {
  return Object.fromEntries(L7_UNPARSED_REASONS.map((r) => [r, 0])) as Record<
    L7UnparsedReason,
    number
  >;
}

/** Go's http.CanonicalHeaderKey: "x-request-id" → "X-Request-Id". */
function canonicalHeader(name: string): string {
  return name
    .toLowerCase()
    .replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/**
 * Turns captured DNS and HTTP/1.x payload into Hubble-shaped L7 flows that
 * accompany the packet flows they were read from: DNS queries and answers
 * (UDP and TCP, matched by id and 5-tuple for latency), HTTP requests and
 * responses matched in order on their connection (keep-alive, pipelining).
 * DNS answers also feed the address → name cache behind source_names and
 * destination_names. All state is bounded (connections, pending queries,
 * queued requests, names) and idle state is swept. Never throws for payload.
 */
export class L7Tracker {
  readonly counts: L7Counts = {
    unparsed: { dns: zeroReasons(), http: zeroReasons() },
    unmatched: { dns: 0, http: 0 },
    evicted: 0,
    flows: { dns: { request: 0, response: 0 }, http: { request: 0, response: 0 } },
  };
  readonly names: DnsNameCache;
  private readonly conns: BoundedMap<string, Conn>;
  private readonly dnsPending: BoundedMap<string, bigint>;
  private readonly dnsSeen: BoundedMap<string, bigint>;
  private readonly idleMs: number;
  private lastSweepMs = 0;
  private readonly headBudget: HeadBudget;
  private readonly uuid: () => string;

  constructor(private readonly opts: L7Options) {
    const max = opts.maxConnections ?? 16384;
    const evict = (): void => {
      this.counts.evicted++;
    };
    this.headBudget = { limit: opts.maxPendingHeadBytes ?? 16 * 1024 * 1024, used: 0 };
    this.conns = new BoundedMap(max, (_k, conn, why) => {
      for (const d of conn.http ?? []) d.release();
      if (why === "full") evict();
    });
    this.dnsPending = new BoundedMap(max, (_k, _v, why) => why === "full" && evict());
    this.dnsSeen = new BoundedMap(4096);
    this.idleMs = opts.idleMs ?? 120_000;
    this.names = new DnsNameCache(opts.maxDnsNames ?? 65536);
    this.uuid = opts.uuid ?? (() => crypto.randomUUID());
  }

  /** Connections, pending DNS queries, cached addresses and unfinished head bytes held now. */
  get held(): { connections: number; dnsPending: number; dnsNames: number; headBytes: number } {
    return {
      headBytes: this.headBudget.used,
      connections: this.conns.size,
      dnsPending: this.dnsPending.size,
      dnsNames: this.names.size,
    };
  }

  /** Sets source_names / destination_names of a flow from the DNS name cache. */
  fillNames(flow: Flow, nowMs: number): void {
    if (this.names.size === 0) return;
    const src = flow.IP?.source;
    const dst = flow.IP?.destination;
    const srcNames = src ? this.names.names(src, nowMs) : undefined;
    const dstNames = dst ? this.names.names(dst, nowMs) : undefined;
    if (srcNames !== undefined) flow.sourceNames = srcNames;
    if (dstNames !== undefined) flow.destinationNames = dstNames;
  }

  /**
   * L7 flows read from the payload of the packet behind `flow` (none for most
   * packets). `origLen` is the packet's length on the wire and `capLen` the
   * bytes captured, so a cut capture is told from a short message.
   */
  observe(
    flow: Flow,
    data: Uint8Array,
    payload: TransportPayload | undefined,
    origLen: number,
    nowMs: number,
  ): Flow[] {
    const l4 = flow.l4?.protocol;
    if (payload === undefined || (l4?.case !== "TCP" && l4?.case !== "UDP")) {
      this.sweepIfDue(nowMs);
      return [];
    }
    const packet: L7Packet = {
      src: flow.IP?.source ?? "",
      dst: flow.IP?.destination ?? "",
      sport: l4.value.sourcePort,
      dport: l4.value.destinationPort,
      tcp: l4.case === "TCP",
      syn: (l4.case === "TCP" && l4.value.flags?.SYN) ?? false,
      rst: (l4.case === "TCP" && l4.value.flags?.RST) ?? false,
      timeNs: timeNs(flow),
    };
    return this.observePacket(packet, () => flow, data, payload, origLen, nowMs);
  }

  /**
   * `observe` for a TCP or UDP packet described by `p`; `base` gives the packet's
   * flow, called only when an L7 flow is made from it (the result is kept).
   */
  observePacket(
    p: L7Packet,
    base: () => Flow,
    data: Uint8Array,
    payload: TransportPayload,
    origLen: number,
    nowMs: number,
  ): Flow[] {
    this.sweepIfDue(nowMs);
    let made: Flow | undefined;
    const flow = (): Flow => {
      made ??= base();
      return made;
    };
    const t: Tuple = { src: p.src, dst: p.dst, sport: p.sport, dport: p.dport, tcp: p.tcp };
    const { dnsPorts, httpPorts } = this.opts;
    const isDns = dnsPorts.has(t.dport) || dnsPorts.has(t.sport);
    const isHttp = t.tcp && (httpPorts.has(t.dport) || httpPorts.has(t.sport));
    if (!isDns && !isHttp) return [];
    const capEnd = payload.end;
    const cut = origLen > data.length;
    // bytes of payload on the wire: the capture's when whole, else from the packet's length
    const wireLen = cut
      ? Math.max(origLen - payload.offset, capEnd - payload.offset)
      : capEnd - payload.offset;
    if (!t.tcp) {
      if (wireLen === 0) return [];
      return this.dnsDatagram(flow, p.timeNs, t, data, payload.offset, capEnd, cut, nowMs);
    }
    const toServer = isHttp ? httpPorts.has(t.dport) : dnsPorts.has(t.dport);
    const key = toServer
      ? `${t.src}|${t.sport}|${t.dst}|${t.dport}`
      : `${t.dst}|${t.dport}|${t.src}|${t.sport}`;
    if (p.rst) {
      for (const d of this.conns.peek(key)?.http ?? []) d.release();
      this.conns.delete(key);
      return [];
    }
    let conn = this.conns.get(key, nowMs);
    if (conn === undefined) {
      if (wireLen === 0 && !p.syn) return [];
      conn = {
        kind: isHttp ? "http" : "dns",
        pos: [new StreamPosition(), new StreamPosition()],
        queue: [],
        dnsBuf: [undefined, undefined],
        dnsBroken: [false, false],
      };
      if (isHttp) {
        conn.http = [
          new HttpDirection("request", this.headBudget),
          new HttpDirection("response", this.headBudget),
        ];
      }
      this.conns.set(key, conn, nowMs);
    }
    const dir = toServer ? 0 : 1;
    const seg = conn.pos[dir].place(
      payload.seq ?? 0,
      p.syn,
      data,
      payload.offset,
      capEnd,
      wireLen,
      p.timeNs,
    );
    if (seg === undefined) return [];
    return conn.kind === "http"
      ? this.httpSegment(flow, conn, dir, seg, t)
      : this.dnsSegment(flow, conn, dir, seg, t, nowMs);
  }

  /**
   * True if `observe` may read the payload of a packet with these ports (TCP or
   * UDP): packets it returns false for make no L7 flows and change no state.
   */
  parses(tcp: boolean, sport: number, dport: number): boolean {
    const { dnsPorts, httpPorts } = this.opts;
    if (dnsPorts.has(dport) || dnsPorts.has(sport)) return true;
    return tcp && (httpPorts.has(dport) || httpPorts.has(sport));
  }

  /** Sweeps (see `sweep`) when the last sweep is more than a second old. */
  sweepIfDue(nowMs: number): void {
    if (nowMs - this.lastSweepMs > 1000) this.sweep(nowMs);
  }

  /** Forgets connections and DNS queries idle for longer than the idle time. */
  sweep(nowMs: number): void {
    this.lastSweepMs = nowMs;
    this.conns.sweep(nowMs - this.idleMs);
    this.dnsPending.sweep(nowMs - this.idleMs);
    this.dnsSeen.sweep(nowMs - 10_000);
  }

  private unparsed(proto: "dns" | "http", reason: L7UnparsedReason): void {
    this.counts.unparsed[proto][reason]++;
  }

  private dnsDatagram(
    flow: () => Flow,
    now: bigint,
    t: Tuple,
    data: Uint8Array,
    offset: number,
    capEnd: number,
    cut: boolean,
    nowMs: number,
  ): Flow[] {
    let msg: DnsMessage;
    try {
      msg = parseDnsMessage(data, offset, capEnd);
    } catch (err) {
      if (!(err instanceof L7ParseError)) throw err;
      this.unparsed("dns", cut && err.reason === "truncated" ? "truncated" : err.reason);
      return [];
    }
    const seenKey = `${t.src}|${t.sport}|${t.dst}|${t.dport}|${msg.id}|${msg.qr}`;
    const seen = this.dnsSeen.get(seenKey, nowMs);
    this.dnsSeen.set(seenKey, now, nowMs);
    if (seen !== undefined && now - seen < DNS_DUPLICATE_NS && now >= seen) return [];
    return [this.dnsFlow(flow, msg, t, "u", now, nowMs)];
  }

  private dnsSegment(
    flow: () => Flow,
    conn: Conn,
    dir: 0 | 1,
    seg: Segment,
    t: Tuple,
    nowMs: number,
  ): Flow[] {
    if (conn.dnsBroken[dir]) return [];
    if (seg.gap && conn.dnsBuf[dir] !== undefined) {
      this.unparsed("dns", "split");
      conn.dnsBuf[dir] = undefined;
    }
    if (seg.capEnd - seg.start < seg.wireLen) {
      // the stream's framing is lost with the cut bytes
      this.unparsed("dns", "truncated");
      conn.dnsBroken[dir] = true;
      return [];
    }
    const before = conn.dnsBuf[dir];
    const part = seg.bytes.subarray(seg.start, seg.capEnd);
    const buf = before ? new Uint8Array(before.length + part.length) : part;
    if (before) {
      buf.set(before, 0);
      buf.set(part, before.length);
    }
    let chunk: ReturnType<typeof parseDnsTcpStream>;
    try {
      chunk = parseDnsTcpStream(buf);
    } catch (err) {
      if (!(err instanceof L7ParseError)) throw err;
      this.unparsed("dns", err.reason);
      conn.dnsBroken[dir] = true;
      conn.dnsBuf[dir] = undefined;
      return [];
    }
    const rest = buf.length - chunk.consumed;
    if (rest > MAX_DNS_TCP_PENDING) {
      this.unparsed("dns", "split");
      conn.dnsBroken[dir] = true;
      conn.dnsBuf[dir] = undefined;
    } else {
      conn.dnsBuf[dir] = rest > 0 ? buf.slice(chunk.consumed) : undefined;
    }
    return chunk.messages.map((m) => this.dnsFlow(flow, m, t, "t", seg.timeNs, nowMs));
  }

  private dnsFlow(
    flow: () => Flow,
    msg: DnsMessage,
    t: Tuple,
    proto: string,
    now: bigint,
    nowMs: number,
  ): Flow {
    const dns = dnsRecord(msg);
    const type = msg.qr ? L7FlowType.RESPONSE : L7FlowType.REQUEST;
    let latencyNs = 0n;
    if (msg.qr) {
      const key = `${proto}|${t.dst}|${t.dport}|${t.src}|${t.sport}|${msg.id}`;
      const asked = this.dnsPending.peek(key);
      if (asked !== undefined) {
        this.dnsPending.delete(key);
        latencyNs = now > asked ? now - asked : 0n;
      } else this.counts.unmatched.dns++;
      this.names.learn(msg, nowMs);
      this.counts.flows.dns.response++;
    } else {
      this.counts.flows.dns.request++;
      this.dnsPending.set(`${proto}|${t.src}|${t.sport}|${t.dst}|${t.dport}|${msg.id}`, now, nowMs);
    }
    return l7Flow(flow(), {
      type,
      latencyNs,
      record: { case: "dns", value: dns },
      summary: dnsSummary(type, dns),
      uuid: this.uuid(),
    });
  }

  private httpSegment(flow: () => Flow, conn: Conn, dir: 0 | 1, seg: Segment, t: Tuple): Flow[] {
    const http = conn.http;
    if (http === undefined) return [];
    const matched: (PendingRequest | undefined)[] = [];
    const bodyOf =
      dir === 0
        ? requestBody
        : (head: HttpHead): number | undefined => {
            if (head.kind === "response" && head.code < 200) {
              matched.push(undefined);
              return 0;
            }
            const req = conn.queue.shift();
            matched.push(req);
            return responseBody(head, req?.method);
          };
    const result = http[dir].read(seg, bodyOf);
    if (result.unparsed) this.unparsed("http", result.unparsed);
    const out: Flow[] = [];
    result.heads.forEach(({ head, timeNs: at }, i) => {
      if (head.kind === "request") {
        const req: PendingRequest = {
          timeNs: at,
          method: head.method,
          url: this.url(head.target, head.headers, t),
          protocol: head.protocol,
          headers: this.headers(head.headers),
        };
        conn.queue.push(req);
        if (conn.queue.length > MAX_QUEUED_REQUESTS) {
          conn.queue.shift();
          this.counts.evicted++;
        }
        const rec = httpRecord({ ...req, code: 0 });
        this.counts.flows.http.request++;
        out.push(
          l7Flow(flow(), {
            type: L7FlowType.REQUEST,
            record: { case: "http", value: rec },
            summary: httpSummary(L7FlowType.REQUEST, rec, 0n),
            uuid: this.uuid(),
          }),
        );
        return;
      }
      if (head.code < 200) return; // interim responses (100 Continue) are not exchanges
      const req = matched[i];
      if (req === undefined) this.counts.unmatched.http++;
      this.counts.flows.http.response++;
      const latencyNs = req && at > req.timeNs ? at - req.timeNs : 0n;
      const rec = httpRecord({
        method: req?.method ?? "",
        url: req?.url ?? "",
        protocol: head.protocol,
        code: head.code,
        headers: req?.headers ?? [],
      });
      out.push(
        l7Flow(flow(), {
          type: L7FlowType.RESPONSE,
          latencyNs,
          record: { case: "http", value: rec },
          summary: httpSummary(L7FlowType.RESPONSE, rec, latencyNs),
          uuid: this.uuid(),
        }),
      );
    });
    return out;
  }

  /** The URL as Hubble shows it: scheme, Host (or the server address), target. */
  private url(target: string, headers: [string, string][], t: Tuple): string {
    if (/^https?:\/\//i.test(target)) return target;
    const host =
      headers.find(([k]) => k.toLowerCase() === "host")?.[1] ??
      (t.dst.includes(":") ? `[${t.dst}]:${t.dport}` : `${t.dst}:${t.dport}`);
    if (target === "*" || !target.startsWith("/")) return `http://${host}`;
    return `http://${host}${target}`;
  }

  /** Allow-listed request headers, sorted by canonical name, sensitive values redacted. */
  private headers(raw: [string, string][]): HTTPHeader[] {
    const allowed = this.opts.httpHeaders;
    if (allowed.size === 0) return [];
    const out: HTTPHeader[] = [];
    for (const [name, value] of raw) {
      const lower = name.toLowerCase();
      if (!allowed.has(lower)) continue;
      out.push(httpHeader(canonicalHeader(name), SENSITIVE_HEADERS.has(lower) ? REDACTED : value));
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}
