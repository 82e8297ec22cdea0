/**
 * Loss accounting over sequenced, counted items (RawFrames of one collector boot and
 * partition, as carried through to FlowBatches). Each item says its `seq` (1, 2, …
 * per key), how many records the earlier items of its key held (`before`) and how many
 * it holds (`count`). Items may arrive out of order (several consumers, redelivery)
 * and twice (redelivery). A seq still missing `holdMs` after a later one arrived is
 * declared lost with the exact number of records between; if it arrives after that,
 * it is refused, so every record is either accepted once or counted lost once.
 */

/** A run of items declared lost. */
export interface SequenceGap {
  readonly key: string;
  /** First missing seq. */
  readonly fromSeq: bigint;
  /** Missing seqs (≥ 1). */
  readonly items: bigint;
  /** Records those items held. */
  readonly records: bigint;
  /** Records of the key's items before the first missing one. */
  readonly recordsBefore: bigint;
}

/** What {@link SequenceLedger.accept} decided. */
export type SequenceVerdict = "accepted" | "duplicate" | "late";

interface Ahead {
  readonly before: bigint;
  readonly count: bigint;
  readonly atMs: number;
}

interface KeyState {
  /** First seq seen; items below it predate this ledger and are not accounted. */
  readonly base: bigint;
  /** Lowest seq not yet accepted or declared lost. */
  next: bigint;
  /** Records before `next`. */
  nextBefore: bigint;
  /** Seqs above `next` already accepted. */
  readonly ahead: Map<bigint, Ahead>;
  /** Seqs declared lost (kept to tell "late" from "duplicate"), bounded. */
  readonly lost: Set<bigint>;
  /** Seqs below `base` accepted (early arrivals), bounded. */
  readonly early: Set<bigint>;
  lastMs: number;
}

/** Options for {@link SequenceLedger}. */
export interface SequenceLedgerOptions {
  /** How long a hole may wait for its items before they are declared lost, ms. */
  readonly holdMs: number;
  /** Keys idle this long are forgotten, ms (default 10 minutes). */
  readonly idleMs?: number;
  /** Clock in ms (default Date.now). */
  readonly now?: () => number;
}

const MAX_REMEMBERED = 4096;

function remember(set: Set<bigint>, seq: bigint): void {
  set.add(seq);
  if (set.size > MAX_REMEMBERED) {
    const oldest = set.values().next();
    if (!oldest.done) set.delete(oldest.value);
  }
}

/** Per-key sequence bookkeeping; see the module comment. */
export class SequenceLedger {
  readonly #holdMs: number;
  readonly #idleMs: number;
  readonly #now: () => number;
  readonly #keys = new Map<string, KeyState>();

  constructor(opts: SequenceLedgerOptions) {
    this.#holdMs = opts.holdMs;
    this.#idleMs = opts.idleMs ?? 600_000;
    this.#now = opts.now ?? Date.now;
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.#keys.size;
  }

  /** Records one arrival; only "accepted" items should be used. */
  accept(key: string, seq: bigint, before: bigint, count: bigint): SequenceVerdict {
    const now = this.#now();
    let st = this.#keys.get(key);
    if (st === undefined) {
      st = {
        base: seq,
        next: seq + 1n,
        nextBefore: before + count,
        ahead: new Map(),
        lost: new Set(),
        early: new Set(),
        lastMs: now,
      };
      this.#keys.set(key, st);
      return "accepted";
    }
    st.lastMs = now;
    if (seq < st.base) {
      if (st.early.has(seq)) return "duplicate";
      remember(st.early, seq);
      return "accepted";
    }
    if (seq < st.next) return st.lost.has(seq) ? "late" : "duplicate";
    if (seq > st.next) {
      if (st.ahead.has(seq)) return "duplicate";
      st.ahead.set(seq, { before, count, atMs: now });
      return "accepted";
    }
    st.next = seq + 1n;
    st.nextBefore = before + count;
    this.#advance(st);
    return "accepted";
  }

  /** Declares every hole older than `holdMs` lost and returns them; forgets idle keys. */
  expire(): SequenceGap[] {
    const now = this.#now();
    const gaps: SequenceGap[] = [];
    for (const [key, st] of this.#keys) {
      for (;;) {
        let first: bigint | undefined;
        for (const seq of st.ahead.keys()) if (first === undefined || seq < first) first = seq;
        if (first === undefined) break;
        const item = st.ahead.get(first);
        if (item === undefined || now - item.atMs < this.#holdMs) break;
        const records = item.before > st.nextBefore ? item.before - st.nextBefore : 0n;
        gaps.push({
          key,
          fromSeq: st.next,
          items: first - st.next,
          records,
          recordsBefore: st.nextBefore,
        });
        const from =
          first - st.next > BigInt(MAX_REMEMBERED) ? first - BigInt(MAX_REMEMBERED) : st.next;
        for (let s = from; s < first; s++) remember(st.lost, s);
        st.next = first;
        st.nextBefore = item.before;
        this.#advance(st);
      }
      if (st.ahead.size === 0 && now - st.lastMs > this.#idleMs) this.#keys.delete(key);
    }
    return gaps;
  }

  /** True while `key` is tracked (seen and not yet forgotten). */
  tracks(key: string): boolean {
    return this.#keys.has(key);
  }

  /**
   * Forgets every key `drop` selects (e.g. a partition this process no longer reads):
   * holes still open there are neither waited for nor declared lost here.
   */
  forget(drop: (key: string) => boolean): void {
    for (const key of this.#keys.keys()) if (drop(key)) this.#keys.delete(key);
  }

  #advance(st: KeyState): void {
    for (let item = st.ahead.get(st.next); item !== undefined; item = st.ahead.get(st.next)) {
      st.ahead.delete(st.next);
      st.nextBefore = item.before + item.count;
      st.next++;
    }
  }
}
