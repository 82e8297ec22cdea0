import type { JsMsg } from "@nats-io/jetstream";
import { type Bus, ensureDurable, RAW_STREAM, subjects } from "@periscope/bus";

/** Raw frames handed to one partition's reader at most before it acknowledges, bytes. */
const READER_MAX_BYTES = 2 * 1024 * 1024;

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
  /** The consumer ended on its own with an error (the partition stops being read). */
  ended(err: unknown): void;
}

/** One partition being read. */
export interface PartitionReader {
  /**
   * Stops taking frames: the pull ends, frames already handed over and not yet begun
   * are given back at once (nak) for the next owner; resolves when the loop has ended.
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
  await ensureDurable(bus, RAW_STREAM, durable, {
    ackWaitMs: opts.ackWaitMs,
    maxAckPending: opts.maxAckPending,
    filterSubject: subjects.rawPartition(partition),
  });
  const consumer = await bus.js().consumers.get(RAW_STREAM, durable);
  // Short pull expiry: the server keeps serving a dead reader's pull requests until they
  // expire, and what it hands them waits for ackWaitMs.
  const messages = await consumer.consume({ max_bytes: READER_MAX_BYTES, expires: 1000 });
  let stopping = false;
  const loop = (async () => {
    for await (const msg of messages) {
      if (stopping) {
        msg.nak();
        continue;
      }
      await opts.handle(msg);
    }
  })().catch((err: unknown) => {
    if (!stopping) opts.ended(err);
  });
  return {
    async stop() {
      stopping = true;
      await messages.close();
      await loop;
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
