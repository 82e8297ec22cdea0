import type { StoredEvent } from "./event.ts";

/** Where released events go (the flow store). */
export interface EventSink<T extends StoredEvent = StoredEvent> {
  add(ev: T, node: string): void;
}

interface Pending<T> {
  ev: T;
  node: string;
  ns: bigint;
  arrivedMs: number;
  seq: number;
}

/** Options for {@link ReorderBuffer}. */
export interface ReorderOptions {
  /** How long an event may wait for earlier events from slower paths, ms. 0 disables. */
  delayMs: number;
  /** Most events held; beyond it the oldest are released at once. */
  maxPending?: number;
  now?: () => number;
}

function before<T>(a: Pending<T>, b: Pending<T>): boolean {
  return a.ns < b.ns || (a.ns === b.ns && a.seq < b.seq);
}

/**
 * Puts events from many nodes and enrichers back into time order before they
 * enter the ring, like Hubble Relay's sort buffer: each event waits up to
 * `delayMs` after arrival for earlier ones; the earliest pending event leaves
 * first. An event arriving later than that window is still stored (slightly
 * out of order), never dropped.
 */
export class ReorderBuffer<T extends StoredEvent = StoredEvent> {
  readonly #heap: Pending<T>[] = [];
  readonly #sink: EventSink<T>;
  readonly #delayMs: number;
  readonly #max: number;
  readonly #now: () => number;
  #seq = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(sink: EventSink<T>, opts: ReorderOptions) {
    this.#sink = sink;
    this.#delayMs = opts.delayMs;
    this.#max = opts.maxPending ?? 65536;
    this.#now = opts.now ?? Date.now;
  }

  /** Events waiting. */
  get pending(): number {
    return this.#heap.length;
  }

  /** Holds `ev` (from `node`) until its wait is over; passes it straight on when the delay is 0. */
  add(ev: T, node: string): void {
    if (this.#delayMs <= 0) {
      this.#sink.add(ev, node);
      return;
    }
    this.#push({ ev, node, ns: ev.ns, arrivedMs: this.#now(), seq: this.#seq++ });
    while (this.#heap.length > this.#max) this.#release();
    this.#schedule();
  }

  /** Releases every event whose wait is over; returns how many. */
  drain(): number {
    const now = this.#now();
    let n = 0;
    // The earliest event decides: everything is released in time order, and an
    // event leaves once the earliest pending one has waited long enough.
    while (this.#heap.length > 0 && (this.#heap[0]?.arrivedMs ?? 0) + this.#delayMs <= now) {
      this.#release();
      n++;
    }
    this.#schedule();
    return n;
  }

  /** Releases everything now (shutdown). */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#heap.length > 0) this.#release();
  }

  #schedule(): void {
    if (this.#timer || this.#heap.length === 0) return;
    const head = this.#heap[0];
    const wait = Math.max(0, (head?.arrivedMs ?? 0) + this.#delayMs - this.#now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.drain();
    }, wait);
  }

  #release(): void {
    const top = this.#pop();
    if (top) this.#sink.add(top.ev, top.node);
  }

  #push(p: Pending<T>): void {
    const h = this.#heap;
    h.push(p);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pi = h[parent];
      const ci = h[i];
      if (!pi || !ci || !before(ci, pi)) break;
      h[parent] = ci;
      h[i] = pi;
      i = parent;
    }
  }

  #pop(): Pending<T> | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || !last) return top;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      const hm = () => h[m] as Pending<T>;
      if (l < h.length && before(h[l] as Pending<T>, hm())) m = l;
      if (r < h.length && before(h[r] as Pending<T>, hm())) m = r;
      if (m === i) break;
      const tmp = h[i] as Pending<T>;
      h[i] = h[m] as Pending<T>;
      h[m] = tmp;
      i = m;
    }
    return top;
  }
}
