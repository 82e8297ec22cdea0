import { DeliverPolicy, type JsMsg, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Bus, FLOWS_STREAM } from "@periscope/bus";

/** Default span of history replayed at start, seconds (the flows stream's default max age). */
export const DEFAULT_HISTORY_SINCE_SEC = 3600;

/** Options for {@link replayHistory}. */
export interface ReplayOptions {
  readonly bus: Pick<Bus, "nc" | "jsm">;
  /** Batches stored this many seconds ago or later are replayed; 0 replays nothing. */
  readonly sinceSec: number;
  /** Called for every replayed message, in stream order. */
  readonly handle: (msg: JsMsg) => void;
  /** Clock in ms (default Date.now). */
  readonly now?: () => number;
}

/** What a replay did. */
export interface ReplayResult {
  /** Stream sequence of the last message the replay covered (0: nothing stored or no replay). */
  readonly lastSeq: number;
  /** First stream sequence replayed (0 when nothing was). */
  readonly firstSeq: number;
  /** Messages replayed. */
  readonly batches: number;
  /** Wall time the replay took, ms. */
  readonly ms: number;
}

/**
 * Reads the flows stream from `sinceSec` ago up to its last message as of the call,
 * through an ordered (ephemeral, unacknowledged) consumer, handing each message to
 * `handle` in stream order. Whatever the stream already removed (age or size limits) is
 * simply not there: nothing is made up for it. The returned `lastSeq` is where live
 * consumption takes over: messages up to it were replayed, later ones were not.
 */
export async function replayHistory(opts: ReplayOptions): Promise<ReplayResult> {
  const started = performance.now();
  if (opts.sinceSec <= 0) return { lastSeq: 0, firstSeq: 0, batches: 0, ms: 0 };
  const jsm = await opts.bus.jsm();
  const { state } = await jsm.streams.info(FLOWS_STREAM);
  const end = state.last_seq;
  if (state.messages === 0 || end === 0) {
    return { lastSeq: end, firstSeq: 0, batches: 0, ms: performance.now() - started };
  }
  const sinceMs = (opts.now ?? Date.now)() - opts.sinceSec * 1000;
  let batches = 0;
  let firstSeq = 0;
  for await (const msg of readStreamRange(opts.bus, sinceMs, end)) {
    if (firstSeq === 0) firstSeq = msg.info.streamSequence;
    batches++;
    opts.handle(msg);
  }
  return { lastSeq: end, firstSeq, batches, ms: performance.now() - started };
}

/**
 * The flows stream's messages stored at `startMs` or later with a stream sequence up to
 * `endSeq`, in stream order, through an ordered (ephemeral, unacknowledged) consumer.
 * Ends early when the stream holds nothing more or `signal` aborts.
 */
export async function* readStreamRange(
  bus: Pick<Bus, "nc">,
  startMs: number,
  endSeq: number,
  signal?: AbortSignal,
): AsyncGenerator<JsMsg, void, undefined> {
  if (endSeq <= 0) return;
  const consumer = await jetstream(bus.nc as NatsConnection).consumers.get(FLOWS_STREAM, {
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(Math.max(0, startMs)).toISOString(),
  });
  for (;;) {
    if (signal?.aborted) return;
    // Fetches end early when nothing more is stored; an empty one means the range is done
    // (the last message may have been removed meanwhile).
    const fetched = await consumer.fetch({ max_messages: 1000, expires: 1000 });
    let got = 0;
    let done = false;
    try {
      for await (const msg of fetched) {
        got++;
        const seq = msg.info.streamSequence;
        if (seq > endSeq) {
          done = true;
          break;
        }
        yield msg;
        if (seq === endSeq || msg.info.pending === 0 || signal?.aborted) {
          done = true;
          break;
        }
      }
    } finally {
      // Also when the reader stops early: the fetch must not keep pulling for nobody.
      fetched.stop();
    }
    if (done || got === 0) return;
  }
}
