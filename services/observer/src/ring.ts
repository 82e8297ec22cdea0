/**
 * Fixed-capacity ring of events with a monotonically increasing write index.
 *
 * Index `i` (0-based count of writes) lives in slot `i % capacity` and is readable while
 * `oldest <= i < next`. Readers keep their own cursor; a reader whose cursor fell behind
 * `oldest` was lapped and learns how many entries it lost. Followers wait for the next
 * write on a promise that each write resolves, so nothing polls.
 */
export class Ring<T> {
  /** Number of entries the ring retains. */
  readonly capacity: number;
  readonly #slots: (T | undefined)[];
  #next = 0;
  #closed = false;
  #waiters = 0;
  #wake = Promise.withResolvers<void>();

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#slots = new Array<T | undefined>(capacity).fill(undefined);
  }

  /** Index the next write gets; equals the number of writes so far. */
  get next(): number {
    return this.#next;
  }

  /** Index of the oldest retained entry (== next when empty). */
  get oldest(): number {
    return Math.max(0, this.#next - this.capacity);
  }

  /** Number of retained entries. */
  get length(): number {
    return this.#next - this.oldest;
  }

  /** Followers currently parked in {@link waitFor} (caught up, waiting for a write). */
  get waiters(): number {
    return this.#waiters;
  }

  /** True once {@link close} ran: followers end when they reach the end. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Appends `value`, overwriting the oldest entry when full; returns its index. */
  write(value: T): number {
    const index = this.#next;
    this.#slots[index % this.capacity] = value;
    this.#next = index + 1;
    // Only parked followers hold the wake promise; without them there is nothing to swap.
    if (this.#waiters > 0) {
      const woken = this.#wake;
      this.#wake = Promise.withResolvers<void>();
      woken.resolve();
    }
    return index;
  }

  /** The entry at `index`, or undefined when it was overwritten or not written yet. */
  at(index: number): T | undefined {
    if (index < this.oldest || index >= this.#next) return undefined;
    return this.#slots[index % this.capacity];
  }

  /**
   * Resolves once an entry with an index >= `index` exists, the ring is closed or
   * `signal` aborts — whichever happens first. Never rejects.
   */
  async waitFor(index: number, signal?: AbortSignal): Promise<void> {
    while (this.#next <= index && !this.#closed && !signal?.aborted) {
      this.#waiters++;
      if (!signal) {
        try {
          await this.#wake.promise;
        } finally {
          this.#waiters--;
        }
        continue;
      }
      const aborted = Promise.withResolvers<void>();
      const onAbort = (): void => aborted.resolve();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        await Promise.race([this.#wake.promise, aborted.promise]);
      } finally {
        this.#waiters--;
        signal.removeEventListener("abort", onAbort);
      }
    }
  }

  /** Wakes every follower; they drain what is left and end. Writes still work. */
  close(): void {
    this.#closed = true;
    this.#wake.resolve();
  }
}

/** One step of a {@link RingReader}: an entry, or a count of entries lost to overwriting. */
export type RingRead<T> =
  | { readonly kind: "entry"; readonly index: number; readonly value: T }
  | { readonly kind: "lost"; readonly count: number };

/** A cursor over a {@link Ring}; many readers may share one ring. */
export class RingReader<T> {
  readonly #ring: Ring<T>;
  #cursor: number;

  /** Starts at `start`, clamped to the ring's oldest entry when it is further back. */
  constructor(ring: Ring<T>, start: number) {
    this.#ring = ring;
    this.#cursor = Math.max(ring.oldest, Math.min(start, ring.next));
  }

  /** Index the next read returns. */
  get cursor(): number {
    return this.#cursor;
  }

  /**
   * The next step without waiting: an entry, a "lost" step when the writer lapped this
   * reader (the cursor then jumps to the oldest retained entry), or undefined at `end`
   * (default: the ring's current end).
   */
  next(end: number = this.#ring.next): RingRead<T> | undefined {
    const oldest = this.#ring.oldest;
    if (this.#cursor < oldest) {
      const count = oldest - this.#cursor;
      this.#cursor = oldest;
      return { kind: "lost", count };
    }
    if (this.#cursor >= Math.min(end, this.#ring.next)) return undefined;
    const index = this.#cursor++;
    const value = this.#ring.at(index);
    if (value === undefined) throw new Error(`ring slot ${index} empty inside retained range`);
    return { kind: "entry", index, value };
  }

  /**
   * Moves the cursor over at most `max` retained entries before `end` (default: the
   * ring's current end) for which `keep(index)` is false, without reading them; stops at
   * the first kept one. A lapped cursor is left for {@link next} to report.
   */
  skip(keep: (index: number) => boolean, max: number, end: number = this.#ring.next): void {
    if (this.#cursor < this.#ring.oldest) return;
    const stop = Math.min(end, this.#ring.next, this.#cursor + max);
    let c = this.#cursor;
    while (c < stop && !keep(c)) c++;
    this.#cursor = c;
  }

  /**
   * The next step, waiting for a write when caught up. Resolves undefined when `signal`
   * aborts or the ring is closed and drained.
   */
  async nextFollow(signal?: AbortSignal): Promise<RingRead<T> | undefined> {
    for (;;) {
      if (signal?.aborted) return undefined;
      const step = this.next();
      if (step) return step;
      if (this.#ring.closed) return undefined;
      await this.#ring.waitFor(this.#cursor, signal);
    }
  }
}
