import { describe, expect, test } from "bun:test";
import { Interner, UNKNOWN_ID } from "./columns.ts";

const enc = new TextEncoder();

describe("columns", () => {
  test.each([
    ["ascii", [enc.encode("ns-1"), enc.encode("ns-1")]],
    ["non-ASCII", [enc.encode("café"), enc.encode("café")]],
    // Different bytes that decode to the same string share its id.
    ["invalid UTF-8", [new Uint8Array([0xff]), new Uint8Array([0xfe]), new Uint8Array([0xff])]],
  ])("columns - interning bytes gives the id of their decoded string (%s)", (_n, seqs) => {
    const it = new Interner();
    it.id("other");
    const ids = seqs.map((b) => {
      const buf = new Uint8Array([7, ...b, 7]); // in the middle of a buffer
      return it.idOfBytes(buf, 1, 1 + b.length);
    });
    const want = it.id(new TextDecoder().decode(seqs[0]));
    expect(ids).toEqual(ids.map(() => want));
    expect(it.idOfBytes(new Uint8Array(), 0, 0)).toBe(0);
  });

  test("columns - a full interner answers UNKNOWN_ID for new strings, keeps the known", () => {
    const it = new Interner(3);
    expect(it.id("a")).toBe(1);
    expect(it.id("b")).toBe(2);
    expect(it.id("c")).toBe(UNKNOWN_ID);
    expect(it.idOfBytes(enc.encode("d"), 0, 1)).toBe(UNKNOWN_ID);
    expect(it.idOfBytes(enc.encode("b"), 0, 1)).toBe(2);
    expect(it.string(2)).toBe("b");
  });
});
