import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FlowBatchSchema, GetFlowsResponseSchema } from "@periscope/proto";
import { randomMessage, seededRandom } from "../../../packages/proto/testing/random-message.ts";
import { readFlowBatch } from "./event.ts";
import { testFlowResponse } from "./testing.ts";
import { checkResponseBytes, isValidUtf8, readCheckedFlowBatch } from "./validate.ts";

/** A varint. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
/** A length-delimited field. */
function len(field: number, body: number[]): number[] {
  return [...varint(field * 8 + 2), ...varint(body.length), ...body];
}
/** GetFlowsResponse{flow: <flowBody>} with a time, as bytes. */
function responseWithFlow(flowBody: number[]): Uint8Array {
  const time = len(1, [0x08, ...varint(1_700_000_000)]); // Timestamp{seconds}
  return Uint8Array.from(len(1, [...time, ...flowBody]));
}

/**
 * Flows the observer's shallow ingest check lets through, each with what the full check
 * must say. `decodes` tells whether protobuf-es's fromBinary accepts it anyway (it does
 * not check UTF-8 or wire types of known fields; Go clients such as hubble do).
 */
const CRAFTED: [string, number[], string, boolean][] = [
  [
    "truncated varint at the end",
    len(6, len(1, [0x08, 0x80])),
    "flow.l4.TCP.source_port: truncated varint",
    false,
  ],
  ["field number 0 in a nested message", len(5, [0x00, 0x00]), "flow.IP: field number 0", false],
  ["wire type 7 in a nested message", len(5, [0x0f]), "flow.IP: field 1 has wire type 7", false],
  [
    "stray end-group in a nested message",
    len(5, [0x7c]),
    "flow.IP: field 15 has wire type 4",
    false,
  ],
  [
    "nested length past its message",
    len(5, [0x0a, 0x32, 0x31]),
    "flow.IP.source: length 50 runs past",
    false,
  ],
  [
    "invalid UTF-8 in a string",
    len(5, len(1, [0xff, 0xfe])),
    "flow.IP.source: string is not valid UTF-8",
    true,
  ],
  [
    "enum sent length-delimited",
    [0x12, 0x00],
    "flow.verdict: wire type 2 where the field's type needs 0",
    true,
  ],
  [
    "unterminated group in a nested message",
    len(5, [0x7b, 0x08, 0x01]),
    "flow.IP: truncated varint",
    false,
  ],
];

describe("flow validation", () => {
  test.each(CRAFTED)("validate - %s is rejected naming the field", (_name, body, want, decodes) => {
    const resp = responseWithFlow(body);
    // The gap being closed: ingest's shallow reader accepts it.
    const batch = Uint8Array.from(len(1, [...resp]));
    expect(readFlowBatch(batch)).toHaveLength(1);
    expect(checkResponseBytes(resp)).toStartWith(want);
    if (decodes) expect(() => fromBinary(GetFlowsResponseSchema, resp)).not.toThrow();
    else expect(() => fromBinary(GetFlowsResponseSchema, resp)).toThrow();
  });

  test("validate - flows as the enricher publishes them pass", () => {
    const resp = toBinary(
      GetFlowsResponseSchema,
      testFlowResponse({ timeMs: Date.now(), srcNamespace: "shop", srcPod: "cart-ü-1" }),
    );
    expect(checkResponseBytes(resp)).toBeUndefined();
  });

  test("validate - 3000 random well-formed GetFlowsResponses of every shape pass", () => {
    const rnd = seededRandom(7);
    const opts = { maxDepth: 6, loneSurrogates: false, unknownFields: true };
    for (let i = 0; i < 3000; i++) {
      const msg = randomMessage(GetFlowsResponseSchema, rnd, opts);
      const bytes = toBinary(GetFlowsResponseSchema, create(GetFlowsResponseSchema, msg));
      const bad = checkResponseBytes(bytes);
      if (bad !== undefined) throw new Error(`message ${i} rejected: ${bad}`);
    }
  });

  test("validate - whatever passes after random corruption still decodes", () => {
    const rnd = seededRandom(11);
    const opts = { maxDepth: 5, loneSurrogates: false, unknownFields: true };
    let rejected = 0;
    let accepted = 0;
    for (let i = 0; i < 4000; i++) {
      const msg = randomMessage(GetFlowsResponseSchema, rnd, opts);
      const bytes = toBinary(GetFlowsResponseSchema, create(GetFlowsResponseSchema, msg));
      if (bytes.length === 0) continue;
      const bad = bytes.slice(0, bytes.length - (rnd() < 0.3 ? 1 + Math.floor(rnd() * 4) : 0));
      for (let k = 1 + Math.floor(rnd() * 3); k > 0 && bad.length > 0; k--) {
        bad[Math.floor(rnd() * bad.length)] = Math.floor(rnd() * 256);
      }
      if (checkResponseBytes(bad) !== undefined) {
        rejected++;
        continue;
      }
      accepted++;
      fromBinary(GetFlowsResponseSchema, bad); // must not throw
    }
    expect(rejected).toBeGreaterThan(500);
    expect(accepted).toBeGreaterThan(100);
  });

  test.each([
    ["ASCII", [0x61, 0x62], true],
    ["2-byte", [0xc3, 0xa9], true],
    ["4-byte emoji", [0xf0, 0x9f, 0x98, 0x80], true],
    ["overlong 2-byte", [0xc0, 0xaf], false],
    ["overlong 3-byte", [0xe0, 0x80, 0xaf], false],
    ["surrogate", [0xed, 0xa0, 0x80], false],
    ["above U+10FFFF", [0xf4, 0x90, 0x80, 0x80], false],
    ["truncated sequence", [0xe2, 0x82], false],
    ["lone continuation", [0x80], false],
  ])("validate - UTF-8 %s: %p", (_name, bytes, want) => {
    expect(isValidUtf8(Uint8Array.from(bytes), 0, bytes.length)).toBe(want);
  });

  test("validate - a batch keeps its good events and counts the bad one", () => {
    const good = (ms: number) =>
      toBinary(GetFlowsResponseSchema, testFlowResponse({ timeMs: ms, src: "10.9.0.1" }));
    const bad = responseWithFlow(CRAFTED[0]?.[1] ?? []);
    const batch = Uint8Array.from([
      ...len(1, [...good(1000)]),
      ...len(1, [...bad]),
      ...len(1, [...good(2000)]),
    ]);
    const checked = readCheckedFlowBatch(batch);
    expect(checked.events.map((e) => e.ns)).toEqual([1_000_000_000n, 2_000_000_000n]);
    expect(checked.rejected).toBe(1);
    expect(checked.reason).toBe("event 1: flow.l4.TCP.source_port: truncated varint");
    const whole = toBinary(
      FlowBatchSchema,
      create(FlowBatchSchema, { responses: [testFlowResponse({ timeMs: 5 })] }),
    );
    expect(readCheckedFlowBatch(whole)).toMatchObject({ rejected: 0, reason: undefined });
  });
});
