import { describe, expect, test } from "bun:test";
import { L7FlowType } from "@periscope/proto";
import { parseDnsMessage, parseDnsTcpStream } from "./dns.ts";
import { L7ParseError } from "./errors.ts";
import { dnsRecord, dnsSummary } from "./flow.ts";
import { mulberry32, mutate } from "./fuzz-rng.ts";

function name(n: string): number[] {
  const out: number[] = [];
  for (const label of n.split(".").filter((l) => l !== "")) {
    out.push(label.length, ...[...label].map((c) => c.charCodeAt(0)));
  }
  out.push(0);
  return out;
}
const u16 = (n: number): number[] => [n >> 8, n & 0xff];
const u32 = (n: number): number[] => [...u16(n >>> 16), ...u16(n & 0xffff)];

/** A query for `qname` of `qtype`. */
function query(id: number, qname: string, qtype: number): Uint8Array {
  return new Uint8Array([
    ...u16(id),
    0x01,
    0x00,
    ...u16(1),
    0,
    0,
    0,
    0,
    0,
    0,
    ...name(qname),
    ...u16(qtype),
    0,
    1,
  ]);
}

/** A response: CNAME www.example.com → web.example.net (compressed), then A and AAAA of the target. */
function response(id: number, rcode = 0): Uint8Array {
  const q = [...name("WWW.Example.com"), ...u16(1), 0, 1];
  const cnameData = [
    3,
    ...[..."web"].map((c) => c.charCodeAt(0)),
    7,
    ...[..."example"].map((c) => c.charCodeAt(0)),
    3,
    110,
    101,
    116,
    0,
  ];
  const cname = [0xc0, 12, ...u16(5), 0, 1, ...u32(600), ...u16(cnameData.length), ...cnameData];
  const targetAt = 12 + q.length + 12; // start of the CNAME's rdata
  const a = [0xc0, targetAt, ...u16(1), 0, 1, ...u32(300), ...u16(4), 10, 1, 2, 3];
  const aaaa = [
    0xc0,
    targetAt,
    ...u16(28),
    0,
    1,
    ...u32(120),
    ...u16(16),
    0xfd,
    0,
    ...Array(13).fill(0),
    1,
  ];
  return new Uint8Array([
    ...u16(id),
    0x81,
    0x80 | rcode,
    ...u16(1),
    ...u16(rcode ? 0 : 3),
    0,
    0,
    0,
    0,
    ...q,
    ...(rcode ? [] : [...cname, ...a, ...aaaa]),
  ]);
}

describe("dns parser", () => {
  test("dns - query: id, name lower-cased with the trailing dot, qtype", () => {
    const m = parseDnsMessage(query(0x1234, "Example.COM", 28));
    expect(m).toEqual({
      id: 0x1234,
      qr: false,
      opcode: 0,
      rcode: 0,
      questions: [{ name: "example.com.", type: 28 }],
      answers: [],
    });
    const dns = dnsRecord(m);
    expect(dnsSummary(L7FlowType.REQUEST, dns)).toBe("DNS Query example.com. AAAA");
  });

  test("dns - response: compressed CNAME chain, A and AAAA, smallest TTL, Hubble summary", () => {
    const m = parseDnsMessage(response(7));
    expect(m.qr).toBe(true);
    expect(m.answers.map((a) => a.target ?? a.ip)).toEqual([
      "web.example.net.",
      "10.1.2.3",
      "fd00::1",
    ]);
    const dns = dnsRecord(m);
    expect(dns.ips).toEqual(["10.1.2.3", "fd00::1"]);
    expect(dns.cnames).toEqual(["web.example.net."]);
    expect(dns.ttl).toBe(120);
    expect(dns.rrtypes).toEqual(["CNAME", "A", "AAAA"]);
    expect(dnsSummary(L7FlowType.RESPONSE, dns)).toBe(
      'DNS Answer "10.1.2.3,fd00::1" CNAMEs: "web.example.net." TTL: 120 (Query www.example.com. A)',
    );
  });

  test("dns - NXDOMAIN summary names the rcode", () => {
    const dns = dnsRecord(parseDnsMessage(response(9, 3)));
    expect(dns.rcode).toBe(3);
    expect(dnsSummary(L7FlowType.RESPONSE, dns)).toBe(
      "DNS Answer RCode: Non-Existent Domain TTL: 0 (Query www.example.com. A)",
    );
  });

  test("dns - TCP stream: two length-prefixed messages, the third incomplete", () => {
    const a = query(1, "a.test", 1);
    const b = response(2);
    const c = query(3, "c.test", 1);
    const bytes = new Uint8Array([
      ...u16(a.length),
      ...a,
      ...u16(b.length),
      ...b,
      ...u16(c.length),
      ...c.slice(0, 5),
    ]);
    const chunk = parseDnsTcpStream(bytes);
    expect(chunk.messages.map((m) => m.id)).toEqual([1, 2]);
    expect(chunk.consumed).toBe(4 + a.length + b.length);
  });

  test.each([
    ["short header", new Uint8Array(5), "truncated"],
    [
      "pointer loop",
      new Uint8Array([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]),
      "malformed",
    ],
    ["cut question", query(1, "example.com", 1).slice(0, 20), "truncated"],
  ])("dns - %s is a typed error", (_n, bytes, reason) => {
    let caught: unknown;
    try {
      parseDnsMessage(bytes);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(L7ParseError);
    expect((caught as L7ParseError).reason).toBe(reason as L7ParseError["reason"]);
  });

  test("dns - fuzz: 120,000 seeded random and mutated messages, only typed errors, bounded output", () => {
    const rand = mulberry32(0x5eed_d45);
    const seeds = [
      query(1, "example.com", 1),
      response(2),
      response(3, 3),
      query(4, "a.b.c.d.e", 28),
    ];
    let parsed = 0;
    let errors = 0;
    const started = performance.now();
    for (let i = 0; i < 120_000; i++) {
      const bytes =
        i % 3 === 0
          ? Uint8Array.from({ length: Math.floor(rand() * 96) }, () => Math.floor(rand() * 256))
          : mutate(seeds[i % seeds.length] as Uint8Array, rand);
      try {
        const m = parseDnsMessage(bytes);
        expect(m.questions.length).toBeLessThanOrEqual(8);
        expect(m.answers.length).toBeLessThanOrEqual(64);
        parsed++;
        if (i % 2 === 0) parseDnsTcpStream(bytes);
      } catch (err) {
        if (!(err instanceof L7ParseError)) throw err;
        errors++;
      }
    }
    expect(parsed).toBeGreaterThan(1000);
    expect(errors).toBeGreaterThan(1000);
    expect(performance.now() - started).toBeLessThan(5000);
  });
});
