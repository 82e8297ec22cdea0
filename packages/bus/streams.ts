import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import type { Bus } from "./connect.ts";
import { BusStreamError } from "./errors.ts";
import { subjects } from "./subjects.ts";

/** JetStream stream holding RawFrames until an enricher acknowledges them (work queue). */
export const RAW_STREAM = "PERISCOPE_RAW";
/** JetStream stream holding FlowBatches: what observers consume, and flow history. */
export const FLOWS_STREAM = "PERISCOPE_FLOWS";
/** JetStream stream holding agent events (and debug events on `periscope.debug.>`): their history. */
export const EVENTS_STREAM = "PERISCOPE_EVENTS";
/** JetStream stream holding process lifecycle frames (`periscope.proc.>`): read by every enricher. */
export const PROC_STREAM = "PERISCOPE_PROC";

/** Which Periscope stream: raw frames, flow batches, or agent/debug events. */
export type StreamKind = "raw" | "flows" | "events" | "proc";

/** Bounds of one stream. */
export interface StreamLimits {
  /** Bytes held at most. */
  readonly maxBytes: number;
  /** Messages older than this are removed, consumed or not, ms. */
  readonly maxAgeMs: number;
  /** `file` survives a broker restart (also kill -9); `memory` does not. */
  readonly storage: "file" | "memory";
}

/** Default limits: 256 MiB and one hour per stream, on disk. */
export const DEFAULT_STREAM_LIMITS: StreamLimits = Object.freeze({
  maxBytes: 256 * 1024 * 1024,
  maxAgeMs: 60 * 60 * 1000,
  storage: "file",
});

/** Publishes carrying the same `Nats-Msg-Id` within this window are stored once, ms. */
export const DUPLICATE_WINDOW_MS = 120_000;

const NS_PER_MS = 1_000_000;

/**
 * The configuration of a Periscope stream.
 * - raw: work queue (a frame is removed once an enricher acks it), `discard: new` so a
 *   full stream refuses frames and the collector counts them lost where it queued them.
 * - flows: limits retention (history), `discard: old`; a consumer detects removed,
 *   unconsumed batches as a gap in the frame sequence they carry.
 * - events: limits retention (history of agent and debug events), `discard: old`.
 */
export function streamConfig(
  which: StreamKind,
  limits: StreamLimits,
): Partial<StreamConfig> & { name: string } {
  const common = {
    max_bytes: limits.maxBytes,
    max_age: limits.maxAgeMs * NS_PER_MS,
    storage: limits.storage === "memory" ? StorageType.Memory : StorageType.File,
    duplicate_window: DUPLICATE_WINDOW_MS * NS_PER_MS,
    num_replicas: 1,
  };
  if (which === "proc") {
    return {
      ...common,
      name: PROC_STREAM,
      subjects: [subjects.procAll],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
    };
  }
  if (which === "events") {
    return {
      ...common,
      name: EVENTS_STREAM,
      subjects: [subjects.agentAll, subjects.debugAll],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
    };
  }
  return which === "raw"
    ? {
        ...common,
        name: RAW_STREAM,
        subjects: [subjects.rawAll],
        retention: RetentionPolicy.Workqueue,
        discard: DiscardPolicy.New,
      }
    : {
        ...common,
        name: FLOWS_STREAM,
        subjects: [subjects.flowsAll],
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
      };
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.status === 404;
}

/**
 * Creates the stream if it does not exist; an existing one is updated to `limits`
 * (a storage change cannot be applied and is logged). Throws {@link BusStreamError}.
 */
export async function ensureStream(
  bus: Bus,
  which: StreamKind,
  limits: StreamLimits = DEFAULT_STREAM_LIMITS,
): Promise<void> {
  const want = streamConfig(which, limits);
  const name = want.name;
  try {
    const jsm = await bus.jsm();
    let have: StreamConfig | undefined;
    try {
      have = (await jsm.streams.info(name)).config;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (have === undefined) {
      try {
        await jsm.streams.add(want);
        return;
      } catch (err) {
        // Another service created it meanwhile: fall through to the comparison.
        have = (
          await jsm.streams.info(name).catch(() => {
            throw err;
          })
        ).config;
      }
    }
    if (have.storage !== want.storage) {
      bus.log.warn(
        { stream: name, have: have.storage, want: want.storage },
        "stream storage differs; kept",
      );
      return;
    }
    if (have.max_bytes !== want.max_bytes || have.max_age !== want.max_age) {
      await jsm.streams.update(name, { max_bytes: want.max_bytes, max_age: want.max_age });
    }
  } catch (err) {
    throw new BusStreamError(`cannot create or update JetStream stream ${name}`, { cause: err });
  }
}

/** A durable pull consumer's settings. */
export interface DurableOptions {
  /** Redelivery after this long without an ack, ms. */
  readonly ackWaitMs: number;
  /** Unacknowledged messages the server hands out at most (all members together). */
  readonly maxAckPending: number;
  /** A new durable starts at new messages instead of the stream's first. */
  readonly startAtNew?: boolean;
  /** The server removes the durable after this long without a member, ms. */
  readonly inactiveMs?: number;
  /** Only messages on this subject (wildcards allowed); absent: the whole stream. */
  readonly filterSubject?: string;
}

/**
 * Creates (or updates) a durable pull consumer with explicit acks on `stream`.
 * Every process using the same `durable` shares it: each message goes to one of them,
 * and one that dies leaves its unacknowledged messages for redelivery.
 */
export async function ensureDurable(
  bus: Bus,
  stream: string,
  durable: string,
  opts: DurableOptions,
): Promise<void> {
  const cfg: Partial<ConsumerConfig> = {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: opts.ackWaitMs * NS_PER_MS,
    max_ack_pending: opts.maxAckPending,
    deliver_policy: opts.startAtNew ? DeliverPolicy.New : DeliverPolicy.All,
    max_deliver: -1,
    ...(opts.inactiveMs !== undefined ? { inactive_threshold: opts.inactiveMs * NS_PER_MS } : {}),
    ...(opts.filterSubject !== undefined ? { filter_subject: opts.filterSubject } : {}),
  };
  try {
    const jsm = await bus.jsm();
    try {
      await jsm.consumers.info(stream, durable);
      const {
        deliver_policy: _fixed,
        durable_name: _name,
        filter_subject: _filter,
        ...mutable
      } = cfg;
      await jsm.consumers.update(stream, durable, mutable);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.consumers.add(stream, cfg);
    }
  } catch (err) {
    throw new BusStreamError(`cannot create durable consumer ${durable} on ${stream}`, {
      cause: err,
    });
  }
}

/**
 * Removes a durable consumer if it exists; resolves true when one was removed.
 * Messages it held unacknowledged stay in the stream for the consumers that remain.
 * Throws {@link BusStreamError}.
 */
export async function removeDurable(bus: Bus, stream: string, durable: string): Promise<boolean> {
  try {
    const jsm = await bus.jsm();
    return await jsm.consumers.delete(stream, durable);
  } catch (err) {
    if (isNotFound(err)) return false;
    throw new BusStreamError(`cannot remove durable consumer ${durable} from ${stream}`, {
      cause: err,
    });
  }
}
