/**
 * A Map holding at most `capacity` entries, least recently used first out,
 * with a last-use time per entry so idle entries can be swept. Iteration and
 * eviction follow last use (a touched key moves to the end).
 */
export class BoundedMap<K, V> {
  private readonly entries = new Map<K, { value: V; usedMs: number }>();
  /** Entries pushed out because the map was full, since construction. */
  evicted = 0;

  constructor(
    readonly capacity: number,
    private readonly onEvict?: (key: K, value: V, why: "full" | "idle") => void,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The value, marking it used at `nowMs`. */
  get(key: K, nowMs: number): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    this.entries.delete(key);
    e.usedMs = nowMs;
    this.entries.set(key, e);
    return e.value;
  }

  /** The value without marking it used. */
  peek(key: K): V | undefined {
    return this.entries.get(key)?.value;
  }

  set(key: K, value: V, nowMs: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, usedMs: nowMs });
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      const e = this.entries.get(oldest.value);
      this.entries.delete(oldest.value);
      this.evicted++;
      if (e) this.onEvict?.(oldest.value, e.value, "full");
    }
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  /** Drops entries not used since `beforeMs`; returns how many. */
  sweep(beforeMs: number): number {
    let n = 0;
    for (const [key, e] of this.entries) {
      if (e.usedMs >= beforeMs) break;
      this.entries.delete(key);
      this.onEvict?.(key, e.value, "idle");
      n++;
    }
    return n;
  }
}
