import { describe, expect, test } from "bun:test";
import { decodeTraceFlow, type PayloadSink } from "@periscope/flow";
import { type Flow, type HTTP, L7FlowType } from "@periscope/proto";
import { ethernet, ipv4, type TcpFlagName, tcp, udp } from "@periscope/testing";
import type { TraceRecord } from "@periscope/wire";
import { L7Tracker } from "./tracker.ts";

const CLIENT = "10.0.0.1";
const SERVER = "10.0.0.2";
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function tracker(extra: Partial<ConstructorParameters<typeof L7Tracker>[0]> = {}): L7Tracker {
  let n = 0;
  return new L7Tracker({
    dnsPorts: new Set([53]),
    httpPorts: new Set([80]),
    httpHeaders: new Set(["user-agent", "authorization"]),
    uuid: () => `u${n++}`,
    ...extra,
  });
}

interface Packet {
  data: Uint8Array;
  origLen: number;
  tsNs: bigint;
}

function tcpPacket(
  fromClient: boolean,
  flags: TcpFlagName[],
  seq: number,
  payload: string,
  tsMs: number,
  capture?: number,
  clientPort = 40000,
): Packet {
  const [src, dst, sport, dport] = fromClient
    ? [CLIENT, SERVER, clientPort, 80]
    : [SERVER, CLIENT, 80, clientPort];
  const whole = ethernet(
    { etherType: 0x0800 },
    ipv4({ src, dst, protocol: 6 }, tcp(sport, dport, flags, enc(payload))),
  );
  new DataView(whole.buffer).setUint32(14 + 20 + 4, seq >>> 0);
  return {
    data: capture ? whole.slice(0, capture) : whole,
    origLen: whole.length,
    tsNs: BigInt(tsMs) * 1_000_000n,
  };
}

function dnsPacket(fromClient: boolean, payload: Uint8Array, tsMs: number): Packet {
  const [src, dst, sport, dport] = fromClient
    ? [CLIENT, SERVER, 40001, 53]
    : [SERVER, CLIENT, 53, 40001];
  const data = ethernet(
    { etherType: 0x0800 },
    ipv4({ src, dst, protocol: 17 }, udp(sport, dport, payload)),
  );
  return { data, origLen: data.length, tsNs: BigInt(tsMs) * 1_000_000n };
}

/** Feeds a packet through the trace decoder and the tracker like processFrame does. */
function feed(t: L7Tracker, p: Packet): Flow[] {
  const rec = {
    data: p.data,
    flags: 0,
    tsBootNs: p.tsNs,
    obsPoint: 0,
    traceReason: 255,
    ifindex: 0,
    netnsCookie: 0n,
  } as unknown as TraceRecord;
  const sink: PayloadSink = {};
  const flow = decodeTraceFlow(
    rec,
    { nodeName: "n", bootToRealtimeNs: 0n, uuid: () => "base" },
    sink,
  );
  t.fillNames(flow, 1000);
  return t.observe(flow, p.data, sink.payload, p.origLen, 1000);
}

const http = (f: Flow | undefined) => f?.l7?.record.value as HTTP;

describe("l7 tracker", () => {
  test("l7 - pipelined requests in one segment, responses in order with latency", () => {
    const t = tracker();
    expect(feed(t, tcpPacket(true, ["SYN"], 100, "", 0))).toEqual([]);
    const reqs = feed(
      t,
      tcpPacket(
        true,
        ["ACK", "PSH"],
        101,
        "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nUser-Agent: x\r\nAuthorization: Basic c2VjcmV0\r\n\r\n",
        10,
      ),
    );
    expect(reqs.map((f) => [f.l7?.type, http(f).url, f.Summary])).toEqual([
      [L7FlowType.REQUEST, "http://h/a", "HTTP/1.1 GET http://h/a"],
      [L7FlowType.REQUEST, "http://h/b", "HTTP/1.1 GET http://h/b"],
    ]);
    expect(http(reqs[1]).headers.map((h) => [h.key, h.value])).toEqual([
      ["Authorization", "HUBBLE_REDACTED"],
      ["User-Agent", "x"],
    ]);
    const resps = feed(
      t,
      tcpPacket(
        false,
        ["ACK", "PSH"],
        500,
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        35,
      ),
    );
    expect(resps.map((f) => [http(f).code, http(f).url, f.l7?.latencyNs, f.isReply])).toEqual([
      [200, "http://h/a", 25_000_000n, true],
      [404, "http://h/b", 25_000_000n, true],
    ]);
    expect(resps[0]?.Summary).toBe("HTTP/1.1 200 25ms (GET http://h/a)");
    expect(resps[0]?.l4?.protocol.case).toBe("TCP");
  });

  test("l7 - a head split over two segments is put back together; the same segment seen twice counts once", () => {
    const t = tracker();
    feed(t, tcpPacket(true, ["SYN"], 0, "", 0));
    const head = "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody";
    expect(feed(t, tcpPacket(true, ["ACK"], 1, head.slice(0, 20), 1))).toEqual([]);
    const second = tcpPacket(true, ["ACK"], 21, head.slice(20), 2);
    const got = feed(t, second);
    expect(got.map((f) => [http(f).method, http(f).url])).toEqual([["POST", "http://h/upload"]]);
    expect(feed(t, second)).toEqual([]); // the other observation point
    expect(t.counts.flows.http.request).toBe(1);
    expect(t.held.headBytes).toBe(0);
  });

  test("l7 - unfinished heads share one byte budget; past it the head is counted as split", () => {
    const t = tracker({ maxPendingHeadBytes: 30 });
    feed(t, tcpPacket(true, ["SYN"], 0, "", 0));
    expect(feed(t, tcpPacket(true, ["ACK"], 1, "GET /first HTTP/1.1\r\n", 1))).toEqual([]);
    expect(t.held.headBytes).toBe(21);
    feed(t, tcpPacket(true, ["SYN"], 0, "", 2, undefined, 40001));
    expect(
      feed(t, tcpPacket(true, ["ACK"], 1, "GET /second HTTP/1.1\r\n", 3, undefined, 40001)),
    ).toEqual([]);
    expect(t.counts.unparsed.http.split).toBe(1);
    expect(t.held.headBytes).toBe(21);
    // a reset gives the first connection's bytes back
    feed(t, tcpPacket(true, ["RST"], 22, "", 4));
    expect(t.held.headBytes).toBe(0);
  });

  test("l7 - a head cut by the capture length is counted as truncated", () => {
    const t = tracker();
    feed(t, tcpPacket(true, ["SYN"], 0, "", 0));
    const p = tcpPacket(
      true,
      ["ACK"],
      1,
      `GET /${"x".repeat(200)} HTTP/1.1\r\nHost: h\r\n\r\n`,
      1,
      128,
    );
    expect(feed(t, p)).toEqual([]);
    expect(t.counts.unparsed.http.truncated).toBe(1);
  });

  test("l7 - DNS over UDP: query, answer with latency, duplicate ignored, names on later flows", () => {
    const t = tracker();
    const q = new Uint8Array([
      0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 97, 112, 105, 1, 116, 0, 0, 1, 0, 1,
    ]);
    const a = new Uint8Array([
      ...q.slice(0, 2),
      0x81,
      0x80,
      0,
      1,
      0,
      1,
      0,
      0,
      0,
      0,
      ...q.slice(12),
      0xc0,
      12,
      0,
      1,
      0,
      1,
      0,
      0,
      0,
      60,
      0,
      4,
      10,
      0,
      0,
      9,
    ]);
    const [query] = feed(t, dnsPacket(true, q, 0));
    expect(query?.Summary).toBe("DNS Query api.t. A");
    const answer = dnsPacket(false, a, 4);
    const [resp] = feed(t, answer);
    expect(resp?.l7?.latencyNs).toBe(4_000_000n);
    expect(resp?.Summary).toBe('DNS Answer "10.0.0.9" TTL: 60 (Query api.t. A)');
    expect(feed(t, answer)).toEqual([]);
    expect(t.names.names("10.0.0.9", 1000)).toEqual(["api.t"]);
    expect(t.names.names("10.0.0.9", 1000 + 61_000)).toBeUndefined();
  });

  test("l7 - fuzz: 30,000 seeded random and mutated segments and datagrams never throw, state stays bounded", () => {
    let seed = 0x1234567;
    const rand = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 4294967296;
    };
    const t = tracker({ maxConnections: 64 });
    const samples = [
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ];
    const flagSets: TcpFlagName[][] = [["SYN"], ["ACK"], ["ACK", "PSH"], ["RST"], ["FIN", "ACK"]];
    let flows = 0;
    for (let i = 0; i < 30_000; i++) {
      const text =
        rand() < 0.5
          ? (samples[i % samples.length] ?? "").slice(0, Math.floor(rand() * 80))
          : String.fromCharCode(
              ...Array.from({ length: Math.floor(rand() * 60) }, () => Math.floor(rand() * 256)),
            );
      const p =
        rand() < 0.8
          ? tcpPacket(
              rand() < 0.5,
              flagSets[i % flagSets.length] ?? ["ACK"],
              Math.floor(rand() * 4000),
              text,
              i,
              rand() < 0.1 ? 70 : undefined,
              40000 + (i % 200),
            )
          : dnsPacket(
              rand() < 0.5,
              Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff),
              i,
            );
      flows += feed(t, p).length;
    }
    expect(flows).toBeGreaterThan(0);
    expect(t.held.connections).toBe(64);
    expect(t.counts.evicted).toBeGreaterThan(0);
    const unparsed = Object.values(t.counts.unparsed.http).reduce((a, b) => a + b, 0);
    expect(unparsed).toBeGreaterThan(0);
  });

  test("l7 - connections are bounded: the least recently used go first and are counted", () => {
    const t = tracker({ maxConnections: 4 });
    for (let i = 0; i < 10; i++) {
      const data = ethernet(
        { etherType: 0x0800 },
        ipv4({ src: CLIENT, dst: SERVER, protocol: 6 }, tcp(41000 + i, 80, ["SYN"])),
      );
      feed(t, { data, origLen: data.length, tsNs: 0n });
    }
    expect(t.held.connections).toBe(4);
    expect(t.counts.evicted).toBe(6);
  });
});
