import { describe, expect, test } from "bun:test";
import { scrubRange, scrubTo, windowSpan } from "./scrub.ts";
import { rowWindow } from "./virtual.ts";

describe("virtual table", () => {
  test("virtual - at the top: the rows in view plus overscan below, a spacer for the rest", () => {
    const w = rowWindow(0, 220, 22, 10_000, 8);
    expect(w).toEqual({ start: 0, end: 19, padTop: 0, padBottom: (10_000 - 19) * 22 });
  });

  test("virtual - scrolled: overscan on both sides; spacers keep the full height", () => {
    const w = rowWindow(22 * 500 + 5, 220, 22, 10_000, 8);
    expect(w.start).toBe(492);
    expect(w.end).toBe(500 + 11 + 8);
    expect(w.padTop + (w.end - w.start) * 22 + w.padBottom).toBe(10_000 * 22);
  });

  test("virtual - at and past the end; fewer rows than the view; nothing", () => {
    const end = rowWindow(22 * 10_000, 220, 22, 10_000, 8);
    expect(end.end).toBe(10_000);
    expect(end.padBottom).toBe(0);
    expect(end.end - end.start).toBeLessThanOrEqual(8);
    expect(rowWindow(0, 900, 22, 12)).toEqual({ start: 0, end: 12, padTop: 0, padBottom: 0 });
    expect(rowWindow(100, 900, 22, 0)).toEqual({ start: 0, end: 0, padTop: 0, padBottom: 0 });
  });
});

describe("scrubber", () => {
  const now = 1_700_000_600_000;

  test("scrub - the range runs from the oldest flow to now; live sits at now", () => {
    const r = scrubRange({ filter: "" }, now - 3 * 3600_000, now);
    expect(r).toEqual({ min: (now - 3 * 3600_000) / 1000, max: now / 1000, value: now / 1000 });
    // Unknown oldest: the last hour.
    expect(scrubRange({ filter: "" }, undefined, now).min).toBe((now - 3600_000) / 1000);
  });

  test("scrub - a window's end is the value; moving keeps the window's length", () => {
    const q = { filter: "port=80", since: now - 120_000, until: now - 60_000 };
    expect(scrubRange(q, now - 3600_000, now).value).toBe((now - 60_000) / 1000);
    expect(windowSpan(q, now)).toBe(60_000);
    expect(scrubTo(q, (now - 600_000) / 1000, now)).toEqual({
      filter: "port=80",
      since: now - 660_000,
      until: now - 600_000,
    });
    // From live: a five-minute window.
    expect(scrubTo({ filter: "" }, now / 1000, now)).toEqual({
      filter: "",
      since: now - 300_000,
      until: now,
    });
  });
});
