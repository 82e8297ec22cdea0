/**
 * Agent and debug events kept by the observer beside the flow ring: a bounded log in
 * arrival order per kind, read with Hubble's number / first / follow / since / until.
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampNs } from "./event.ts";
import type { EventQuery } from "./query.ts";

/** Default number of agent or debug events kept. */
export const DEFAULT_SIDE_EVENTS = 4095;

/** One stored event with its time in ns since the epoch (0 when it has none). */
interface Entry<T> {
  readonly ns: bigint;
  readonly value: T;
}

/**
 * A bounded log: the oldest entries go when `capacity` is reached. Indexes are absolute
 * (they keep growing), so a follower notices entries that went before it read them.
 */
export class EventLog<T extends { time?: Timestamp | undefined }> {
  readonly capacity: number;
  #items: Entry<T>[] = [];
  /** Absolute index of `#items[0]`. */
  #first = 0;
  #waiters = new Set<() => void>();
  #closed = false;

  constructor(capacity = DEFAULT_SIDE_EVENTS) {
    this.capacity = capacity;
  }

  /** Events held right now. */
  get length(): number {
    return this.#items.length;
  }
  /** Index of the oldest entry held. */
  get oldest(): number {
    return this.#first;
  }
  /** Index the next entry will get. */
  get next(): number {
    return this.#first + this.#items.length;
  }

  /** Appends an event (dropping the oldest beyond capacity) and wakes followers. */
  add(value: T): void {
    if (this.#closed) return;
    this.#items.push({ ns: timestampNs(value.time) ?? 0n, value });
    if (this.#items.length > this.capacity + 256) {
      const drop = this.#items.length - this.capacity;
      this.#items.splice(0, drop);
      this.#first += drop;
    }
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }

  /** The entry at absolute index `i`, if still held. */
  at(i: number): Entry<T> | undefined {
    if (i < this.oldest || i >= this.next) return undefined;
    if (this.#items.length > this.capacity && i < this.next - this.capacity) return undefined;
    return this.#items[i - this.#first];
  }

  /** Resolves at the next add, at close, or when `signal` aborts. */
  wait(signal?: AbortSignal): Promise<void> {
    if (this.#closed || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        signal?.removeEventListener("abort", done);
        this.#waiters.delete(done);
        resolve();
      };
      this.#waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /** Ends every follower; later adds are ignored. */
  close(): void {
    this.#closed = true;
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }

  get closed(): boolean {
    return this.#closed;
  }
}

function startOf<T extends { time?: Timestamp | undefined }>(
  log: EventLog<T>,
  q: EventQuery,
): number {
  const sinceNs = timestampNs(q.since);
  const oldest = Math.max(log.oldest, log.next - log.capacity);
  if (sinceNs !== undefined) {
    let i = log.next;
    while (i > oldest && (log.at(i - 1)?.ns ?? 0n) >= sinceNs) i--;
    return i;
  }
  if (q.first) return oldest;
  if (q.number > 0n) return Math.max(oldest, log.next - Number(q.number));
  return q.follow ? log.next : oldest;
}

/**
 * The events `q` selects, like GetFlows: the last `number` (the first with `first`), or
 * all held, within since/until; with `follow`, new events until `signal` aborts or the
 * log closes. An event after `until` ends the stream.
 */
export async function* readLog<T extends { time?: Timestamp | undefined }>(
  log: EventLog<T>,
  q: EventQuery,
  signal?: AbortSignal,
): AsyncGenerator<T, void, undefined> {
  const sinceNs = timestampNs(q.since);
  const untilNs = timestampNs(q.until);
  const end = log.next;
  let i = startOf(log, q);
  let count = 0n;
  for (;;) {
    if (!q.follow && q.number > 0n && count >= q.number) return;
    if (signal?.aborted) return;
    if (i >= log.next || (!q.follow && i >= end)) {
      if (!q.follow || log.closed) return;
      await log.wait(signal);
      continue;
    }
    const e = log.at(i);
    if (e === undefined) {
      i = Math.max(i + 1, log.next - log.capacity); // overwritten before this reader got it
      continue;
    }
    i++;
    if (untilNs !== undefined && e.ns > untilNs) return;
    if (sinceNs !== undefined && e.ns < sinceNs) continue;
    count++;
    yield e.value;
  }
}
