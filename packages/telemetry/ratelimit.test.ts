import { describe, expect, test } from "bun:test";
import pino from "pino";
import { errorReason, RateLimitedLog } from "./index.ts";

/** A real pino logger whose JSON lines are collected in `lines`. */
function captured(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

const describeDrops = (n: number): string => `dropped ${n} malformed batch${n === 1 ? "" : "es"}`;

describe("rate-limited log", () => {
  test("ratelimit - first occurrence at once, then one summary per interval with the count", () => {
    const { log, lines } = captured();
    let now = 1_000_000;
    const rl = new RateLimitedLog({ log, describe: describeDrops, now: () => now });
    rl.note("truncated varint", { subject: "periscope.flows.a" });
    expect(lines).toHaveLength(1);
    expect(lines[0]?.msg).toBe("dropped 1 malformed batch: truncated varint");
    expect(lines[0]?.level).toBe(40);
    expect(lines[0]?.subject).toBe("periscope.flows.a");
    for (let i = 0; i < 500; i++) {
      now += 10;
      rl.note(`reason ${i}`, { subject: "periscope.flows.b" });
    }
    expect(lines).toHaveLength(1);
    expect(rl.pending).toBe(500);
    now = 1_000_000 + 10_000;
    rl.flush();
    expect(lines).toHaveLength(2);
    expect(lines[1]?.msg).toBe("dropped 500 malformed batches in the last 10s: reason 499");
    expect(lines[1]?.count).toBe(500);
    expect(lines[1]?.subject).toBe("periscope.flows.b");
    expect(rl.total).toBe(501);
    // No line carries a stack trace.
    expect(JSON.stringify(lines)).not.toContain("stack");
  });

  test("ratelimit - a quiet interval lets the next occurrence through at once", () => {
    const { log, lines } = captured();
    let now = 0;
    const rl = new RateLimitedLog({
      log,
      describe: describeDrops,
      intervalMs: 1000,
      now: () => now,
    });
    rl.note("a");
    now = 1500;
    rl.note("b");
    expect(lines.map((l) => l.msg)).toEqual([
      "dropped 1 malformed batch: a",
      "dropped 1 malformed batch: b",
    ]);
    rl.flush(); // nothing pending: no line
    expect(lines).toHaveLength(2);
    now = 1700;
    rl.note("c", {}, 5);
    rl.note("d", {}, 2);
    now = 2500;
    rl.flush();
    expect(lines.at(-1)?.msg).toBe("dropped 7 malformed batches in the last 1s: d");
    expect(rl.total).toBe(9);
  });

  test("ratelimit - the summary is written by its timer without further occurrences", async () => {
    const { log, lines } = captured();
    const rl = new RateLimitedLog({ log, describe: describeDrops, intervalMs: 50, level: "info" });
    rl.note("first");
    rl.note("second");
    rl.note("third");
    expect(lines).toHaveLength(1);
    const deadline = Date.now() + 2000;
    while (lines.length < 2 && Date.now() < deadline) await Bun.sleep(5);
    expect(lines[1]?.msg).toBe("dropped 2 malformed batches in the last 1s: third");
    expect(lines[1]?.level).toBe(30);
    rl.flush();
    expect(lines).toHaveLength(2);
  });

  test.each([
    ["an error with a cause", new Error("outer", { cause: new Error("inner") }), "outer: inner"],
    ["a cause repeating its error", new Error("same", { cause: new Error("same") }), "same"],
    ["a string", "plain string", "plain string"],
    ["a RangeError", new RangeError("premature EOF"), "premature EOF"],
  ])("ratelimit - errorReason of %s is its messages", (_label, err, want) => {
    expect(errorReason(err)).toBe(want);
  });
});
