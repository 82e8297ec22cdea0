import type { FlowFilter } from "@periscope/proto";
import { type StoredEvent, timestampNs } from "./event.ts";
import { type EventQuery, type IndexPrefilter, type QueryStep, readEvents } from "./query.ts";
import type { FlowStore } from "./store.ts";

/**
 * The stream the ring is fed from, as far as a query needs it: which part of the stream
 * the ring covers, and a way to read the rest.
 */
export interface StreamHistory {
  /**
   * First stream sequence whose events all went into the ring (the first message of the
   * start-up replay, else the first one stored after the start).
   */
  readonly fromSeq: number;
  /** Events at or after this time (ns) are in messages from {@link fromSeq} on. */
  readonly fromNs: bigint;
  /**
   * The events of the messages stored at `startMs` or later up to stream sequence
   * `endSeq`, one array per message, in stream order, each message once (a frame the
   * collector published twice is read once). Events that do not decode come as a
   * LostEvent, as at ingest.
   */
  read(startMs: number, endSeq: number, signal?: AbortSignal): AsyncIterable<StoredEvent[]>;
}

/** A GetFlows-like request: the selection and its filters. */
export interface StoreQuery extends EventQuery {
  readonly whitelist?: readonly FlowFilter[];
  readonly blacklist?: readonly FlowFilter[];
}

/** The part of a query answered from the stream: messages up to `endSeq`. */
interface StreamPart {
  readonly history: StreamHistory;
  readonly sinceNs: bigint;
  readonly endSeq: number;
}

/**
 * Whether `q` reaches back before what the ring holds: `since` older than the ring's
 * coverage (the start-up replay's window) or than the newest event overwritten in it.
 * The stream then answers every message before the first one wholly in the ring.
 */
function streamPart(store: FlowStore, q: EventQuery): StreamPart | undefined {
  const history = store.history;
  const sinceNs = timestampNs(q.since);
  if (history === undefined || sinceNs === undefined) return undefined;
  const evicted = store.evictedStreamSeq;
  const older = sinceNs < history.fromNs || (evicted > 0 && sinceNs <= store.evictedMaxNs);
  if (!older) return undefined;
  const endSeq = Math.max(history.fromSeq, evicted + 1) - 1;
  return endSeq > 0 ? { history, sinceNs, endSeq } : undefined;
}

/**
 * Events of the stream part held back at least, to be sent in time order; more than twice
 * this many are never held.
 */
export const SORT_WINDOW = 16_384;

/** Stable order by event time. */
function byTime(a: StoredEvent, b: StoredEvent): number {
  return a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0;
}

/**
 * GetFlows over the store (see {@link readEvents}): the request's filters become a column
 * prefilter, so flows that cannot match are never decoded; and a `since` older than the
 * ring is answered from the flows stream first, up to the first message wholly in the
 * ring, then from the ring, where entries of earlier messages are skipped: no gap, no
 * duplicate. A follow stream then goes on live. Without `follow` the answer is sorted by
 * time (the stream's part within a window of {@link SORT_WINDOW} events, so memory stays
 * bounded). What the stream no longer holds (age, size limits) is not made up.
 */
export async function* queryStore(
  store: FlowStore,
  q: StoreQuery,
  match: (ev: StoredEvent) => boolean,
  signal?: AbortSignal,
): AsyncGenerator<QueryStep, void, undefined> {
  const filtered = (q.whitelist?.length ?? 0) + (q.blacklist?.length ?? 0) > 0;
  const pre = filtered ? store.prefilter(q.whitelist ?? [], q.blacklist ?? []) : undefined;
  const part = streamPart(store, q);
  if (part === undefined) {
    yield* readEvents(store.ring, q, match, signal, pre);
    return;
  }
  // Ring entries of messages the stream part covers are left to it.
  const seqs = store.columns.streamSeq;
  const cap = store.ring.capacity;
  const endSeq = part.endSeq;
  const ringPre: IndexPrefilter = (i) => {
    const seq = seqs[i % cap] ?? 0;
    return (seq === 0 || seq > endSeq) && (pre === undefined || pre(i));
  };
  const untilNs = timestampNs(q.until);
  // Held back to be sent in time order; bounded, so a long stretch of history streams out
  // instead of piling up in memory (order is exact up to events this far out of place).
  let held: StoredEvent[] = [];
  let count = 0n;
  const sinceMs = Number(part.sinceNs / 1_000_000n);
  read: for await (const events of part.history.read(sinceMs, endSeq, signal)) {
    for (const ev of events) {
      if (ev.ns < part.sinceNs || (untilNs !== undefined && ev.ns > untilNs)) continue;
      if (ev.kind !== "lostEvents" && !match(ev)) continue;
      if (q.follow) yield { kind: "event", event: ev };
      else held.push(ev);
      if (ev.kind === "lostEvents") continue;
      count++;
      if (!q.follow && q.number > 0n && count >= q.number) break read;
    }
    if (held.length >= 2 * SORT_WINDOW) {
      held.sort(byTime);
      for (const event of held.slice(0, SORT_WINDOW)) yield { kind: "event", event };
      held = held.slice(SORT_WINDOW);
    }
  }
  if (signal?.aborted) return;
  if (q.follow) {
    yield* readEvents(store.ring, { ...q, number: 0n }, match, signal, ringPre);
    return;
  }
  const rest = q.number > 0n ? q.number - count : 0n;
  if (q.number === 0n || rest > 0n) {
    for await (const step of readEvents(
      store.ring,
      { ...q, number: rest },
      match,
      signal,
      ringPre,
    )) {
      if (step.kind === "lost") yield step;
      else held.push(step.event);
    }
  }
  held.sort(byTime);
  for (const event of held) yield { kind: "event", event };
}
