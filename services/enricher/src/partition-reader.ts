import { JetStreamApiCodes, JetStreamApiError, type JsMsg } from "@nats-io/jetstream";
import { type Bus, ensureDurable, RAW_STREAM, subjects } from "@periscope/bus";

/** Raw frames one pull brings at most, bytes. */
const READER_MAX_BYTES = 2 * 1024 * 1024;
/** A pull request ends after this long, ms (also the longest a stop waits). */
const PULL_EXPIRES_MS = 1000;
/** Wait after a failed pull before the next, ms. */
const RETRY_MS = 250;

/** Settings of {@link startPartitionReader}. */
export interface PartitionReaderOptions {
  readonly bus: Bus;
  readonly partition: number;
  /** Durable name (one per partition, kept across owners). */
  readonly durable: string;
  /** Redelivery after this long without an ack, ms. */
  readonly ackWaitMs: number;
  /** Unacknowledged frames of this partition at most. */
  readonly maxAckPending: number;
  /** Handles one frame in partition order; may wait (backpressure). */
  handle(msg: JsMsg): void | Promise<void>;
  /** A pull failed (broker away, durable removed, …); the reader tries again shortly. */
  failed(err: unknown): void;
}

/** One partition being read. */
export interface PartitionReader {
  /**
   * Stops taking frames: no new pull is made, frames the last one still brings are
   * given back at once (nak) for the next owner; resolves when that pull has ended
   * (within PULL_EXPIRES_MS).
   */
  stop(): Promise<void>;
}

/**
 * Reads partition `p` of every node (`periscope.raw.*.<p>`) from `PERISCOPE_RAW`
 * through its own durable, so whoever owns the partition next resumes from the last
 * acknowledged frame: nothing is skipped, frames in hand are at most delivered again.
 */
export async function startPartitionReader(opts: PartitionReaderOptions): Promise<PartitionReader> {
  const { bus, partition, durable } = opts;
  const ensure = () =>
    ensureDurable(bus, RAW_STREAM, durable, {
      ackWaitMs: opts.ackWaitMs,
      maxAckPending: opts.maxAckPending,
      filterSubject: subjects.rawPartition(partition),
    });
  await ensure();
  const consumer = await bus.js().consumers.get(RAW_STREAM, durable);
  let stopping = false;
  // Pulls one at a time, each expiring after PULL_EXPIRES_MS: a stopped reader lets its
  // last pull run out (giving back what it still brings) instead of abandoning it, since
  // the server would hand a dangling pull's frames to nobody until their ack wait ends.
  const loop = (async () => {
    while (!stopping) {
      try {
        const batch = await consumer.fetch({
          max_bytes: READER_MAX_BYTES,
          expires: PULL_EXPIRES_MS,
        });
        for await (const msg of batch) {
          if (stopping) {
            msg.nak();
            continue;
          }
          await opts.handle(msg);
        }
      } catch (err) {
        if (stopping) break;
        opts.failed(err);
        await Bun.sleep(RETRY_MS);
        // The durable is gone (removed by hand, broker store lost): make it again.
        const gone =
          err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound;
        if (!stopping && gone) await ensure().catch(() => {});
      }
    }
  })();
  return {
    async stop() {
      stopping = true;
      // The last pull expires by then; a call to a broker that is away does not hold the stop.
      await Promise.race([loop, Bun.sleep(PULL_EXPIRES_MS + RETRY_MS)]);
    },
  };
}

/** Bounds work in flight across every reader of a process (e.g. publishes awaiting acks). */
export class InFlightGate {
  readonly #max: number;
  #count = 0;
  readonly #waiters: (() => void)[] = [];

  constructor(max: number) {
    this.#max = max;
  }

  /** Units in flight. */
  get count(): number {
    return this.#count;
  }

  /** Takes a unit, waiting while `max` are taken. */
  async take(): Promise<void> {
    while (this.#count >= this.#max) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    this.#count++;
  }

  /** Gives a unit back and wakes one waiter. */
  give(): void {
    this.#count--;
    this.#waiters.shift()?.();
  }
}
