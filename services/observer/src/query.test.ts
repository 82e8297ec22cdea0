import { describe, expect, test } from "bun:test";
import type { StoredEvent } from "./event.ts";
import { type EventQuery, readEvents } from "./query.ts";
import { Ring } from "./ring.ts";
import { testFlowEvent } from "./testing.ts";

const all = (): boolean => true;

async function times(ring: Ring<StoredEvent>, q: EventQuery): Promise<number[]> {
  const out: number[] = [];
  for await (const step of readEvents(ring, q, all)) {
    if (step.kind === "event") out.push(Number(step.event.ns / 1_000_000n));
  }
  return out;
}

describe("query", () => {
  // The ring as a slow path leaves it: 1003 arrived after the sort buffer let 1004 and
  // 1005 through.
  const ring = new Ring<StoredEvent>(16);
  for (const t of [1001, 1002, 1004, 1005, 1003, 1006]) {
    ring.write(testFlowEvent({ timeMs: t }));
  }
  const base: EventQuery = { number: 0n, first: false, follow: false };

  test("query - a history answer is sorted by time though the ring holds a late event", async () => {
    expect(await times(ring, base)).toEqual([1001, 1002, 1003, 1004, 1005, 1006]);
  });

  test("query - the last N by ring position, sent oldest first", async () => {
    expect(await times(ring, { ...base, number: 3n })).toEqual([1003, 1005, 1006]);
  });

  test("query - first N keep the ring's selection and come out sorted", async () => {
    expect(await times(ring, { ...base, number: 3n, first: true })).toEqual([1001, 1002, 1004]);
  });
});
