import { describe, expect, test } from "bun:test";
import { Ring, type RingRead, RingReader } from "./ring.ts";

function drain<T>(reader: RingReader<T>, end?: number): RingRead<T>[] {
  const out: RingRead<T>[] = [];
  for (let step = reader.next(end); step; step = reader.next(end)) out.push(step);
  return out;
}

function values<T>(steps: RingRead<T>[]): T[] {
  return steps.flatMap((s) => (s.kind === "entry" ? [s.value] : []));
}

describe("ring", () => {
  test.each([
    { capacity: 4, writes: 0, oldest: 0, length: 0, kept: [] as number[] },
    { capacity: 4, writes: 3, oldest: 0, length: 3, kept: [0, 1, 2] },
    { capacity: 4, writes: 4, oldest: 0, length: 4, kept: [0, 1, 2, 3] },
    { capacity: 4, writes: 10, oldest: 6, length: 4, kept: [6, 7, 8, 9] },
    { capacity: 1, writes: 5, oldest: 4, length: 1, kept: [4] },
  ])("ring - retains the newest entries (cap $capacity, $writes writes)", (c) => {
    const ring = new Ring<number>(c.capacity);
    for (let i = 0; i < c.writes; i++) expect(ring.write(i)).toBe(i);
    expect(ring.oldest).toBe(c.oldest);
    expect(ring.length).toBe(c.length);
    expect(ring.next).toBe(c.writes);
    expect(values(drain(new RingReader(ring, 0)))).toEqual([...c.kept]);
    expect(ring.at(c.oldest - 1)).toBeUndefined();
    expect(ring.at(c.writes)).toBeUndefined();
  });

  test.each([0, 1.5, -3])("ring - rejects capacity %p", (capacity) => {
    expect(() => new Ring<number>(capacity)).toThrow(RangeError);
  });

  test("ring - reader stops at the given end", () => {
    const ring = new Ring<string>(8);
    for (const s of ["a", "b", "c", "d"]) ring.write(s);
    expect(values(drain(new RingReader(ring, 1), 3))).toEqual(["b", "c"]);
  });

  test("ring - lapped reader reports how many entries it lost, then continues", () => {
    const ring = new Ring<number>(4);
    ring.write(0);
    ring.write(1);
    const reader = new RingReader(ring, 0);
    expect(reader.next()).toEqual({ kind: "entry", index: 0, value: 0 });
    for (let i = 2; i < 10; i++) ring.write(i);
    // cursor 1, oldest now 6: entries 1..5 were overwritten
    expect(reader.next()).toEqual({ kind: "lost", count: 5 });
    expect(values(drain(reader))).toEqual([6, 7, 8, 9]);
  });

  test("ring - follower wakes on a write made after it started waiting", async () => {
    const ring = new Ring<string>(4);
    const reader = new RingReader(ring, ring.next);
    const pending = reader.nextFollow();
    let settled = false;
    void pending.then(() => {
      settled = true;
    });
    await Promise.resolve();
    expect(settled).toBe(false);
    ring.write("x");
    expect(await pending).toEqual({ kind: "entry", index: 0, value: "x" });
  });

  test("ring - follower ends when its signal aborts", async () => {
    const ring = new Ring<string>(4);
    const reader = new RingReader(ring, 0);
    const ac = new AbortController();
    const pending = reader.nextFollow(ac.signal);
    ac.abort();
    expect(await pending).toBeUndefined();
  });

  test("ring - close drains then ends followers", async () => {
    const ring = new Ring<string>(4);
    ring.write("a");
    const reader = new RingReader(ring, 0);
    ring.close();
    expect(await reader.nextFollow()).toEqual({ kind: "entry", index: 0, value: "a" });
    expect(await reader.nextFollow()).toBeUndefined();
  });

  test("ring - many followers all see each write", async () => {
    const ring = new Ring<number>(16);
    const readers = Array.from({ length: 5 }, () => new RingReader(ring, 0));
    const pending = readers.map((r) => r.nextFollow());
    ring.write(42);
    const got = await Promise.all(pending);
    expect(got.map((s) => (s?.kind === "entry" ? s.value : undefined))).toEqual([
      42, 42, 42, 42, 42,
    ]);
  });

  test.each([
    { name: "stops at the first kept entry", start: 0, max: 100, end: undefined, cursor: 5 },
    { name: "moves at most max entries", start: 0, max: 2, end: undefined, cursor: 2 },
    { name: "stops at end", start: 0, max: 100, end: 3, cursor: 3 },
    { name: "leaves a lapped cursor to next()", start: -1, max: 100, end: undefined, cursor: 6 },
  ])("ring - skip $name", (c) => {
    const ring = new Ring<number>(8);
    for (let i = 0; i < 14; i++) ring.write(i === 11 ? 1 : 0); // retained 6..13, kept: 11
    const reader = new RingReader(ring, c.start < 0 ? 0 : ring.oldest + c.start);
    if (c.start < 0) for (let i = 0; i < 8; i++) ring.write(0); // lap the reader
    const keep = (index: number): boolean => ring.at(index) === 1;
    reader.skip(keep, c.max, c.end === undefined ? undefined : ring.oldest + c.end);
    expect(reader.cursor - (c.start < 0 ? 0 : ring.oldest)).toBe(c.cursor);
    if (c.start < 0) expect(reader.next()?.kind).toBe("lost");
  });
});
