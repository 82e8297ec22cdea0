import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { type StoredEvent, timestampNs } from "./event.ts";
import type { Ring } from "./ring.ts";
import { RingReader } from "./ring.ts";

/** The selection fields Hubble's GetFlows/GetAgentEvents/GetDebugEvents requests share. */
export interface EventQuery {
  /** Last `number` events (first `number` with `first`); 0 = no limit. */
  readonly number: bigint;
  readonly first: boolean;
  readonly follow: boolean;
  readonly since?: Timestamp | undefined;
  readonly until?: Timestamp | undefined;
}

/** A request combination Hubble rejects; becomes InvalidArgument at the RPC edge. */
export class QueryError extends Error {
  override readonly name = "QueryError";
}

/** Hubble's validateRequest: `first` and `follow` exclude each other. */
export function validateQuery(q: EventQuery): void {
  if (q.first && q.follow) throw new QueryError("first cannot be specified with follow");
}

function isLost(ev: StoredEvent): boolean {
  return ev.kind === "lostEvents";
}

/** How long one request may scan before it lets the event loop run, ms. */
export const SCAN_SLICE_MS = 5;

/**
 * Keeps one request's scan from starving everything else (other streams, ingest,
 * /healthz): `due()` is cheap to call per event scanned, and true once the current
 * slice has used up `sliceMs`; the caller then awaits `pause()`, one macrotask turn in
 * which pending I/O runs, and a new slice begins.
 */
export class ScanSlicer {
  #sliceStart = performance.now();
  constructor(readonly sliceMs = SCAN_SLICE_MS) {}

  /**
   * True when the slice is used up. Called once per event scanned; the clock is read every
   * time (~25 ns) because one event may cost milliseconds under many filters.
   */
  due(): boolean {
    return performance.now() - this.#sliceStart >= this.sliceMs;
  }

  /** Gives the event loop one turn and starts a new slice. */
  async pause(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.#sliceStart = performance.now();
  }
}

/**
 * A cheap test on ring indexes that is false only for entries `match` surely rejects
 * (see FlowStore.prefilter); entries it passes still go through `match`.
 */
export type IndexPrefilter = (index: number) => boolean;

/** Entries a prefilter may reject in a row before the scan looks at the clock. */
const REJECTS_PER_CLOCK_READ = 1024;
/** Entries a scan passes over unread at once (then it looks at the clock). */
const SKIP_PER_CLOCK_READ = 65_536;

/**
 * Where a reader for `q` starts (Hubble's newRingReader): `since` wins over `number`;
 * `first` starts at the oldest entry; a plain follow starts at the end; otherwise walk back
 * from the newest entry until `number` matching events or the first one before `since`.
 * Lost events stored in the ring never count. Entries `pre` rejects are skipped undecoded.
 */
export async function startIndex(
  ring: Ring<StoredEvent>,
  q: EventQuery,
  match: (ev: StoredEvent) => boolean,
  slicer: ScanSlicer = new ScanSlicer(),
  pre?: IndexPrefilter,
): Promise<number> {
  const sinceNs = timestampNs(q.since);
  if (q.first && sinceNs === undefined) return ring.oldest;
  if (q.follow && q.number === 0n && sinceNs === undefined) return ring.next;
  // No count and no since: everything retained, without matching it all twice.
  if (q.number === 0n && sinceNs === undefined) return ring.oldest;
  let count = 0n;
  let rejected = 0;
  for (let idx = ring.next - 1; idx >= ring.oldest; idx--) {
    if (pre !== undefined && !pre(idx)) {
      if (++rejected % REJECTS_PER_CLOCK_READ === 0 && slicer.due()) await slicer.pause();
      continue;
    }
    if (slicer.due()) await slicer.pause(); // entries overwritten meanwhile read as undefined
    const resp = ring.at(idx);
    if (resp === undefined || isLost(resp) || !match(resp)) continue;
    count++;
    if (sinceNs !== undefined) {
      if (resp.ns < sinceNs) return idx + 1;
    } else if (count === q.number) {
      return idx;
    }
  }
  return ring.oldest;
}

/** One item of {@link readEvents}: a stored event, or entries this reader lost to the writer. */
export type QueryStep =
  | { readonly kind: "event"; readonly event: StoredEvent }
  | { readonly kind: "lost"; readonly count: number };

/**
 * Streams the events `q` selects (Hubble's eventsReader): matching flows within
 * since/until, lost events unfiltered, and a "lost" step whenever the writer lapped this
 * reader. Without `follow` it ends at the ring's end as of the call, or after `number`
 * events; with `follow` it waits for new events until `signal` aborts or the ring closes.
 * An event after `until` ends the stream. A long scan lets the event loop run every
 * {@link SCAN_SLICE_MS} ms, so one heavy request cannot stall others or /healthz.
 * Without `follow` the selected events come out sorted by time (stable); a follow
 * stream sends them in the ring's order (time order within the sort buffer's window).
 */
export async function* readEvents(
  ring: Ring<StoredEvent>,
  q: EventQuery,
  match: (ev: StoredEvent) => boolean,
  signal?: AbortSignal,
  pre?: IndexPrefilter,
): AsyncGenerator<QueryStep, void, undefined> {
  if (q.follow) {
    yield* scanEvents(ring, q, match, signal, pre);
    return;
  }
  // A history answer is sent oldest first even where the ring holds events that came
  // later than the sort buffer's window (a slow node or enricher): collect, then a
  // stable sort by time. Lapped-reader steps go out as they happen.
  const events: StoredEvent[] = [];
  for await (const step of scanEvents(ring, q, match, signal, pre)) {
    if (step.kind === "lost") yield step;
    else events.push(step.event);
  }
  events.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));
  for (const event of events) yield { kind: "event", event };
}

async function* scanEvents(
  ring: Ring<StoredEvent>,
  q: EventQuery,
  match: (ev: StoredEvent) => boolean,
  signal?: AbortSignal,
  pre?: IndexPrefilter,
): AsyncGenerator<QueryStep, void, undefined> {
  const sinceNs = timestampNs(q.since);
  const untilNs = timestampNs(q.until);
  const slicer = new ScanSlicer();
  const reader = new RingReader(ring, await startIndex(ring, q, match, slicer, pre));
  const end = ring.next;
  let count = 0n;
  let rejected = 0;
  for (;;) {
    if (!q.follow && q.number > 0n && count >= q.number) return;
    if (rejected % REJECTS_PER_CLOCK_READ === 0 && slicer.due()) {
      await slicer.pause();
      if (signal?.aborted) return;
    }
    // Entries the prefilter rejects are passed over unread, unless `until` is set: an
    // entry after it ends the stream whether it matches or not.
    if (pre !== undefined && untilNs === undefined) {
      reader.skip(pre, SKIP_PER_CLOCK_READ, q.follow ? ring.next : end);
    }
    const step = q.follow ? await reader.nextFollow(signal) : reader.next(end);
    if (step === undefined) return;
    if (step.kind === "lost") {
      yield step;
      continue;
    }
    const resp = step.value;
    if (isLost(resp)) {
      yield { kind: "event", event: resp };
      continue;
    }
    if (sinceNs !== undefined || untilNs !== undefined) {
      const ns = resp.ns;
      if (untilNs !== undefined && ns > untilNs) return;
      if (sinceNs !== undefined && ns < sinceNs) continue;
    }
    if (pre !== undefined && !pre(step.index)) {
      rejected++;
      continue;
    }
    rejected = 0;
    if (!match(resp)) continue;
    count++;
    yield { kind: "event", event: resp };
  }
}
