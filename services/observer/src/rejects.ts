import { create } from "@bufbuild/protobuf";
import { type Timestamp, TimestampSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { GetFlowsResponseSchema, LostEventSchema, LostEventSource } from "@periscope/proto";
import { errorReason, type Logger, RateLimitedLog } from "@periscope/telemetry";
import { StoredEvent } from "./event.ts";
import type { ObserverMetrics } from "./metrics.ts";

/** What ingest does with input it cannot use: count it, log it without flooding. */
export interface IngestRejects {
  /**
   * A payload that is not a FlowBatch: `errors_total{kind="malformed_batch"}` and a
   * rate-limited warning ("dropped N malformed batches in the last 10s: <reason>").
   */
  batch(subject: string, bytes: number, err: unknown): void;
  /**
   * `count` events of one batch that do not decode (see `readCheckedFlowBatch`):
   * `errors_total{kind="malformed_event"}`, `events_lost_total{where="observer_malformed"}`
   * and a rate-limited warning naming the first bad field.
   */
  events(subject: string, count: number, reason: string): void;
  /** Writes pending summaries; call when ingest stops. */
  flush(): void;
}

/** Creates the {@link IngestRejects} of one ingest; lines at most every `intervalMs` (10 s). */
export function createIngestRejects(
  log: Logger,
  metrics: ObserverMetrics | undefined,
  intervalMs = 10_000,
): IngestRejects {
  const batches = new RateLimitedLog({
    log,
    intervalMs,
    describe: (n) => `dropped ${n} malformed FlowBatch${n === 1 ? "" : "es"}`,
  });
  const events = new RateLimitedLog({
    log,
    intervalMs,
    describe: (n) => `dropped ${n} undecodable event${n === 1 ? "" : "s"}`,
  });
  return {
    batch(subject, bytes, err) {
      metrics?.errors.inc({ kind: "malformed_batch" });
      batches.note(errorReason(err), { subject, bytes });
    },
    events(subject, count, reason) {
      metrics?.errors.inc({ kind: "malformed_event" }, count);
      metrics?.eventsLost.inc({ where: "observer_malformed" }, count);
      events.note(reason, { subject }, count);
    },
    flush() {
      batches.flush();
      events.flush();
    },
  };
}

/**
 * The LostEvent stored in place of `count` events from `node` that were dropped because
 * they do not decode (source UNKNOWN_LOST_EVENT_SOURCE, as the enricher reports records
 * it cannot decode). It is dated `firstNs`, the first lost event's own time when that
 * could be read (so it sorts where the events were), else now.
 */
export function rejectedEventsLost(node: string, count: number, firstNs?: bigint): StoredEvent {
  const time = firstNs === undefined ? timestampFromMs(Date.now()) : timestampFromNs(firstNs);
  return StoredEvent.fromResponse(
    create(GetFlowsResponseSchema, {
      nodeName: node,
      time,
      responseTypes: {
        case: "lostEvents",
        value: create(LostEventSchema, {
          source: LostEventSource.UNKNOWN_LOST_EVENT_SOURCE,
          numEventsLost: BigInt(count),
          ...(firstNs === undefined ? {} : { first: time }),
        }),
      },
    }),
  );
}

/** ns since the epoch → Timestamp (nanos in [0, 1e9) also before the epoch). */
function timestampFromNs(ns: bigint): Timestamp {
  let seconds = ns / 1_000_000_000n;
  let nanos = Number(ns - seconds * 1_000_000_000n);
  if (nanos < 0) {
    seconds -= 1n;
    nanos += 1_000_000_000;
  }
  return create(TimestampSchema, { seconds, nanos });
}
