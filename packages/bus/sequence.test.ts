import { describe, expect, test } from "bun:test";
import { SequenceLedger } from "./sequence.ts";

/** A ledger on a clock the test moves. */
function ledger(holdMs = 1000): { l: SequenceLedger; tick(ms: number): void } {
  let now = 0;
  return {
    l: new SequenceLedger({ holdMs, idleMs: 60_000, now: () => now }),
    tick: (ms) => {
      now += ms;
    },
  };
}

describe("sequence ledger", () => {
  test("sequence - in-order items are accepted, nothing is lost", () => {
    const { l, tick } = ledger();
    expect(l.accept("k", 1n, 0n, 3n)).toBe("accepted");
    expect(l.accept("k", 2n, 3n, 2n)).toBe("accepted");
    tick(5000);
    expect(l.expire()).toEqual([]);
  });

  test("sequence - a hole filled within the hold time is no loss", () => {
    const { l, tick } = ledger();
    l.accept("k", 1n, 0n, 1n);
    expect(l.accept("k", 3n, 3n, 1n)).toBe("accepted");
    tick(500);
    expect(l.expire()).toEqual([]);
    expect(l.accept("k", 2n, 1n, 2n)).toBe("accepted");
    tick(5000);
    expect(l.expire()).toEqual([]);
  });

  test("sequence - a hole older than the hold time is lost with its exact record count", () => {
    const { l, tick } = ledger();
    l.accept("k", 1n, 0n, 4n);
    l.accept("k", 4n, 4n + 5n + 6n, 1n);
    tick(999);
    expect(l.expire()).toEqual([]);
    tick(1);
    expect(l.expire()).toEqual([
      { key: "k", fromSeq: 2n, items: 2n, records: 11n, recordsBefore: 4n },
    ]);
    expect(l.expire()).toEqual([]);
    // The lost items arriving afterwards are refused: counted once, as lost.
    expect(l.accept("k", 2n, 4n, 5n)).toBe("late");
    expect(l.accept("k", 5n, 16n, 1n)).toBe("accepted");
  });

  test.each([
    ["a redelivered in-order item", 1n],
    ["a redelivered item ahead of a hole", 3n],
  ])("sequence - %s is a duplicate", (_name, seq) => {
    const { l } = ledger();
    l.accept("k", 1n, 0n, 1n);
    l.accept("k", 3n, 2n, 1n);
    expect(l.accept("k", seq, seq - 1n, 1n)).toBe("duplicate");
  });

  test("sequence - keys are independent; items before the first seen are accepted once", () => {
    const { l, tick } = ledger();
    l.accept("a", 5n, 40n, 10n);
    l.accept("b", 1n, 0n, 1n);
    expect(l.accept("a", 4n, 30n, 10n)).toBe("accepted");
    expect(l.accept("a", 4n, 30n, 10n)).toBe("duplicate");
    l.accept("b", 3n, 7n, 1n);
    tick(2000);
    expect(l.expire()).toEqual([
      { key: "b", fromSeq: 2n, items: 1n, records: 6n, recordsBefore: 1n },
    ]);
  });

  test("sequence - forgotten keys hold no holes and start again at their next item", () => {
    const { l, tick } = ledger();
    l.accept("p1", 1n, 0n, 1n);
    l.accept("p1", 3n, 2n, 1n);
    l.accept("p2", 1n, 0n, 1n);
    l.accept("p2", 3n, 2n, 1n);
    l.forget((key) => key === "p1");
    expect(l.size).toBe(1);
    expect([l.tracks("p1"), l.tracks("p2")]).toEqual([false, true]);
    expect(l.accept("p1", 9n, 8n, 1n)).toBe("accepted");
    tick(2000);
    expect(l.expire().map((g) => g.key)).toEqual(["p2"]);
  });

  test("sequence - idle keys are forgotten", () => {
    const { l, tick } = ledger();
    l.accept("k", 1n, 0n, 1n);
    tick(61_000);
    l.expire();
    expect(l.size).toBe(0);
  });
});
