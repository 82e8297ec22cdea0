import { describe, expect, test } from "bun:test";
import { decodeUtf8 } from "./utf8.ts";

const enc = new TextEncoder();

describe("utf8", () => {
  test.each([
    ["", "empty"],
    ["demo/frontend", "short ASCII"],
    ["10.200.0.2", "an address"],
    ["x".repeat(48), "ASCII at the loop's limit"],
    ["TCP Flags: ACK, PSH ".repeat(10), "long ASCII"],
    ["naïve-pod", "short, not ASCII"],
    ["日本語のポッド名", "CJK"],
    ["emoji 🚀 in a summary", "astral"],
  ])("utf8 - %p (%s) decodes as TextDecoder does", (text) => {
    expect(decodeUtf8(enc.encode(text))).toBe(text);
  });

  test("utf8 - malformed bytes become U+FFFD like TextDecoder", () => {
    const bad = new Uint8Array([0x61, 0xff, 0x62]);
    expect(decodeUtf8(bad)).toBe(new TextDecoder().decode(bad));
    expect(decodeUtf8(bad)).toBe("a\uFFFDb");
  });
});
