import { describe, expect, test } from "bun:test";
import { BpfError, CLOCK_BOOTTIME, CLOCK_REALTIME, clockGettimeNs, netnsCookie } from "./index.ts";
import { isRoot } from "./test-helpers.ts";

describe("libc bindings", () => {
  test("clock - CLOCK_REALTIME agrees with Date.now() to within a second", () => {
    const diffMs = Number(clockGettimeNs(CLOCK_REALTIME) / 1_000_000n) - Date.now();
    expect(Math.abs(diffMs)).toBeLessThan(1000);
  });

  test("clock - CLOCK_BOOTTIME never goes back", () => {
    const a = clockGettimeNs(CLOCK_BOOTTIME);
    expect(clockGettimeNs(CLOCK_BOOTTIME)).toBeGreaterThanOrEqual(a);
  });

  test("clock - an unknown clock id is a BpfError with EINVAL", () => {
    expect(() => clockGettimeNs(4242)).toThrow(BpfError);
    expect(() => clockGettimeNs(4242)).toThrow(/EINVAL/);
  });

  test("netns cookie - the own namespace has one stable non-zero cookie", () => {
    const cookie = netnsCookie(undefined);
    expect(cookie).not.toBe(0n);
    expect(netnsCookie(undefined)).toBe(cookie);
  });

  test.skipIf(!isRoot)("netns cookie - a missing netns is a BpfError naming it", () => {
    expect(() => netnsCookie("psct-no-such-netns")).toThrow(/psct-no-such-netns/);
  });
});
