import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import type { Logger } from "@periscope/telemetry";
import { readFlowBatch, type StoredEvent } from "./event.ts";
import type { ObserverMetrics } from "./metrics.ts";
import { type EventSink, ReorderBuffer } from "./reorder.ts";
import type { FlowStore } from "./store.ts";

/** A bus payload that is not a FlowBatch. Counted and logged, never fatal. */
export class MalformedBatchError extends Error {
  override readonly name = "MalformedBatchError";
}

/** Options for {@link startIngest}. */
export interface IngestOptions {
  readonly nc: NatsConnection;
  readonly store: FlowStore;
  readonly log: Logger;
  readonly metrics?: ObserverMetrics | undefined;
  /** Subject to subscribe to; default `periscope.flows.>`. */
  readonly subject?: string;
  /** How long events wait to be put in time order across nodes, ms (0: no reordering). */
  readonly sortBufferMs?: number;
}

/** A running bus subscription feeding the store. */
export interface Ingest {
  /** Batches handled so far (well-formed or not). */
  readonly batches: () => number;
  /** Unsubscribes and waits for the message loop to end. */
  stop(): Promise<void>;
}

/** `periscope.flows.<node>` → `<node>` (already sanitized by the publisher). */
function nodeFromSubject(subject: string): string {
  const prefix = "periscope.flows.";
  return subject.startsWith(prefix) ? subject.slice(prefix.length) : subject;
}

/**
 * Decodes one payload into the store. Returns the number of events stored, or throws
 * {@link MalformedBatchError} (nothing stored) when the payload is not a FlowBatch.
 */
export function ingestBatch(
  sink: EventSink<StoredEvent>,
  subject: string,
  payload: Uint8Array,
): number {
  let events: StoredEvent[];
  try {
    // Events keep views of the payload (sent on as is), so they get their own copy.
    events = readFlowBatch(payload.slice());
  } catch (err) {
    throw new MalformedBatchError(`undecodable FlowBatch on ${subject} (${payload.length} bytes)`, {
      cause: err,
    });
  }
  const node = nodeFromSubject(subject);
  for (const ev of events) sink.add(ev, node);
  return events.length;
}

/**
 * Subscribes to the flows subjects and writes every event of every FlowBatch into the
 * store, through a sort buffer that restores time order across nodes and enrichers. A malformed payload increments `errors_total{kind="malformed_batch"}` and is
 * logged; the subscription keeps going.
 */
export function startIngest(opts: IngestOptions): Ingest {
  const { store, log, metrics } = opts;
  const subject = opts.subject ?? subjects.flowsAll;
  const sub: Subscription = opts.nc.subscribe(subject);
  const reorder = new ReorderBuffer<StoredEvent>(
    {
      add(ev, node) {
        store.add(ev, node);
        if (ev.kind === "flow") metrics?.flowsReceived.inc();
        metrics?.ringEntries.set(store.ring.length);
      },
    },
    { delayMs: opts.sortBufferMs ?? 0 },
  );
  let batches = 0;
  const loop = (async () => {
    try {
      for await (const msg of sub) {
        batches++;
        metrics?.batchesReceived.inc();
        try {
          ingestBatch(reorder, msg.subject, msg.data);
        } catch (err) {
          const kind = err instanceof MalformedBatchError ? "malformed_batch" : "ingest";
          metrics?.errors.inc({ kind });
          log.warn({ err, subject: msg.subject, kind }, "dropping FlowBatch");
        }
      }
    } catch (err) {
      metrics?.errors.inc({ kind: "subscription" });
      log.error({ err, subject }, "flow subscription ended with an error");
    }
  })();
  log.info({ subject }, "ingesting flows");
  return {
    batches: () => batches,
    async stop() {
      sub.unsubscribe();
      await loop;
      reorder.flush();
    },
  };
}
