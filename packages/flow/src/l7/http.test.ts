import { describe, expect, test } from "bun:test";
import { L7FlowType } from "@periscope/proto";
import { L7ParseError } from "./errors.ts";
import { httpRecord, httpSummary } from "./flow.ts";
import { mulberry32, mutate } from "./fuzz-rng.ts";
import { HTTP_MAX_HEAD, parseHttpHead } from "./http.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const REQUEST =
  "GET /a/b?x=1 HTTP/1.1\r\nHost: web.test:8080\r\nUser-Agent: curl/7.88\r\nAuthorization: Bearer s3cret\r\n\r\n";
const RESPONSE =
  "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nContent-Type: text/plain\r\n\r\nnot found";
const CHUNKED =
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";

function reason(bytes: Uint8Array, kind: "request" | "response"): string | undefined {
  try {
    parseHttpHead(bytes, kind);
    return undefined;
  } catch (err) {
    if (err instanceof L7ParseError) return err.reason;
    throw err;
  }
}

describe("http parser", () => {
  test("http - request line and headers, Hubble summary", () => {
    const head = parseHttpHead(enc(REQUEST), "request");
    expect(head).toMatchObject({
      kind: "request",
      method: "GET",
      target: "/a/b?x=1",
      protocol: "HTTP/1.1",
      chunked: false,
    });
    expect(head?.headEnd).toBe(REQUEST.length);
    expect(head?.headers.map(([k]) => k)).toEqual(["Host", "User-Agent", "Authorization"]);
    const rec = httpRecord({
      method: "GET",
      url: "http://web.test:8080/a/b?x=1",
      protocol: "HTTP/1.1",
      code: 0,
      headers: [],
    });
    expect(httpSummary(L7FlowType.REQUEST, rec, 0n)).toBe(
      "HTTP/1.1 GET http://web.test:8080/a/b?x=1",
    );
    expect(httpSummary(L7FlowType.RESPONSE, { ...rec, code: 200 }, 3_400_000n)).toBe(
      "HTTP/1.1 200 3ms (GET http://web.test:8080/a/b?x=1)",
    );
  });

  test("http - status line, Content-Length and chunked framing", () => {
    const head = parseHttpHead(enc(RESPONSE), "response");
    expect(head).toMatchObject({ kind: "response", code: 404, contentLength: 9, chunked: false });
    expect(parseHttpHead(enc(CHUNKED), "response")).toMatchObject({ code: 200, chunked: true });
  });

  test("http - a head not finished yet is undefined, not an error", () => {
    expect(parseHttpHead(enc(REQUEST.slice(0, 30)), "request")).toBeUndefined();
    expect(parseHttpHead(enc("HTTP/1."), "response")).toBeUndefined();
  });

  test.each([
    ["TLS client hello", new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), "request", "tls"],
    ["HTTP/2 preface", enc("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "request", "http2"],
    [
      "binary",
      new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]),
      "request",
      "malformed",
    ],
    ["bad version", enc("GET / HTTP/3.0\r\n\r\n"), "request", "malformed"],
    ["bad status", enc("HTTP/1.1 20 OK\r\n\r\n"), "response", "malformed"],
    [
      "conflicting lengths",
      enc("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
      "response",
      "malformed",
    ],
    [
      "endless head",
      enc(`GET / HTTP/1.1\r\nX: ${"a".repeat(HTTP_MAX_HEAD)}`),
      "request",
      "malformed",
    ],
  ])("http - %s is counted by reason", (_n, bytes, kind, want) => {
    expect(reason(bytes, kind as "request" | "response")).toBe(want);
  });

  test("http - fuzz: 120,000 seeded random and mutated heads, only typed errors, bounded output", () => {
    const rand = mulberry32(0x5eed_0477);
    const seeds = [
      enc(REQUEST),
      enc(RESPONSE),
      enc(CHUNKED),
      enc("POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"),
    ];
    let parsed = 0;
    let errors = 0;
    const started = performance.now();
    for (let i = 0; i < 120_000; i++) {
      const seed = seeds[i % seeds.length] as Uint8Array;
      const bytes =
        i % 3 === 0
          ? Uint8Array.from({ length: Math.floor(rand() * 128) }, () => Math.floor(rand() * 256))
          : mutate(seed, rand);
      try {
        const head = parseHttpHead(bytes, i % 2 === 0 ? "request" : "response");
        if (head) {
          expect(head.headers.length).toBeLessThanOrEqual(64);
          expect(head.headEnd).toBeLessThanOrEqual(bytes.length);
          parsed++;
        }
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
