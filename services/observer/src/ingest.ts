import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type ConsumerMessages, type JsMsg, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type Bus,
  ensureDurable,
  ensureStream,
  FLOWS_STREAM,
  SequenceLedger,
  subjects,
} from "@periscope/bus";
import {
  FlowBatchSchema,
  type FrameSource,
  FrameSourceSchema,
  type GetDebugEventsResponse,
  GetFlowsResponseSchema,
  LostEventSchema,
  LostEventSource,
} from "@periscope/proto";
import type { Logger } from "@periscope/telemetry";
import { decodeDebugEvents } from "./debug-events.ts";
import { readFlowBatch, type StoredEvent } from "./event.ts";
import type { DEFAULT_HISTORY_SINCE_SEC, ReplayResult } from "./history.ts";
import { readStreamRange, replayHistory } from "./history.ts";
import type { ObserverMetrics } from "./metrics.ts";
import { createIngestRejects, type IngestRejects, rejectedEventsLost } from "./rejects.ts";
import { type EventSink, ReorderBuffer } from "./reorder.ts";
import type { EventLog } from "./side-events.ts";
import type { FlowStore } from "./store.ts";
import type { StreamHistory } from "./store-query.ts";
import { type CheckedBatch, readCheckedFlowBatch } from "./validate.ts";

/** A bus payload that is not a FlowBatch. Counted and logged, never fatal. */
export class MalformedBatchError extends Error {
  override readonly name = "MalformedBatchError";
}

/** How long a missing frame may be awaited (redelivery, reordering) before it counts as lost, ms. */
export const DEFAULT_GAP_HOLD_MS = 15_000;

/** Options for {@link startIngest}. */
export interface IngestOptions {
  /** The bus (JetStream streams and the durable are set up through it). */
  readonly bus: Pick<Bus, "nc" | "jsm" | "log" | "onReconnect">;
  readonly store: FlowStore;
  readonly log: Logger;
  readonly metrics?: ObserverMetrics | undefined;
  /** Durable consumer on `PERISCOPE_FLOWS`; one per observer (default `observer`). */
  readonly durable?: string;
  /** How long events wait to be put in time order across nodes, ms (0: no reordering). */
  readonly sortBufferMs?: number;
  /** See {@link DEFAULT_GAP_HOLD_MS}. */
  readonly gapHoldMs?: number;
  /** Where the batches' debug events (FlowBatch.debug_events) go; dropped when absent. */
  readonly debugEvents?: EventLog<GetDebugEventsResponse>;
  /**
   * History replayed from the stream before live consumption starts, seconds back
   * (default 0: none; the service passes its `--history-since`, by default
   * {@link DEFAULT_HISTORY_SINCE_SEC}).
   */
  readonly historySinceSec?: number;
}

/** A running consumer feeding the store. */
export interface Ingest {
  /** Batches handled so far (well-formed or not). */
  readonly batches: () => number;
  /** Records counted lost on the way (frames missing from a collector partition's sequence). */
  readonly lost: () => number;
  /** Batches the stream removed before this consumer read them (stream sequence jumps). */
  readonly streamGaps: () => number;
  /** What the start-up replay of the stream's history did. */
  readonly replay: ReplayResult;
  /** Stops consuming and waits for the message loop to end. */
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
 * Events that do not decode in full are left out, replaced by one LostEvent and
 * reported to `rejects`.
 */
export function ingestBatch(
  sink: EventSink<StoredEvent>,
  subject: string,
  payload: Uint8Array,
  rejects?: IngestRejects,
  debugEvents?: EventLog<GetDebugEventsResponse>,
): number {
  let checked: CheckedBatch;
  try {
    // Events keep views of the payload (sent on as is), so they get their own copy.
    checked = readCheckedFlowBatch(payload.slice());
  } catch (err) {
    throw new MalformedBatchError(`undecodable FlowBatch on ${subject} (${payload.length} bytes)`, {
      cause: err,
    });
  }
  const node = nodeFromSubject(subject);
  for (const ev of checked.events) sink.add(ev, node);
  if (checked.rejected > 0) {
    sink.add(rejectedEventsLost(node, checked.rejected, checked.rejectedNs), node);
    rejects?.events(subject, checked.rejected, checked.reason ?? "");
  }
  if (debugEvents !== undefined && checked.debugEvents.length > 0) {
    const bad = decodeDebugEvents(checked.debugEvents, (ev) => debugEvents.add(ev));
    if (bad.rejected > 0) {
      sink.add(rejectedEventsLost(node, bad.rejected), node);
      rejects?.events(subject, bad.rejected, bad.reason ?? "");
    }
  }
  return checked.events.length;
}

function varint(buf: Uint8Array, at: { pos: number }): number {
  let v = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    const b = buf[at.pos++];
    if (b === undefined) throw new MalformedBatchError("truncated varint");
    v += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return v;
  }
  throw new MalformedBatchError("varint too long");
}

/**
 * The `source` of a FlowBatch (field 2) without decoding its events; undefined when
 * absent or without a boot id. Throws {@link MalformedBatchError} on broken framing.
 */
export function readBatchSource(payload: Uint8Array): FrameSource | undefined {
  const at = { pos: 0 };
  while (at.pos < payload.length) {
    const tag = varint(payload, at);
    const wt = tag & 7;
    if (wt === 0) varint(payload, at);
    else if (wt === 1) at.pos += 8;
    else if (wt === 5) at.pos += 4;
    else if (wt === 2) {
      const len = varint(payload, at);
      const end = at.pos + len;
      if (end > payload.length) throw new MalformedBatchError("field beyond the payload");
      if (tag >>> 3 === 2) {
        let src: FrameSource;
        try {
          src = fromBinary(FrameSourceSchema, payload.subarray(at.pos, end));
        } catch (err) {
          throw new MalformedBatchError("undecodable FlowBatch.source", { cause: err });
        }
        return src.bootId === "" ? undefined : src;
      }
      at.pos = end;
    } else throw new MalformedBatchError(`wire type ${wt}`);
  }
  return undefined;
}

/**
 * What the ring covers of the flows stream after the start-up `replay` (which read the
 * messages stored from `coveredFromMs` on), and a reader for the older part.
 */
async function streamHistory(
  bus: Pick<Bus, "nc" | "jsm">,
  replay: ReplayResult,
  coveredFromMs: number,
): Promise<StreamHistory> {
  let fromSeq = replay.firstSeq;
  if (fromSeq === 0) {
    // Nothing replayed: the ring starts with the first message stored after the start.
    const last =
      replay.lastSeq > 0
        ? replay.lastSeq
        : (await (await bus.jsm()).streams.info(FLOWS_STREAM)).state.last_seq;
    fromSeq = last + 1;
  }
  return {
    fromSeq,
    fromNs: BigInt(Math.floor(coveredFromMs)) * 1_000_000n,
    read: (startMs, endSeq, signal) => readStreamEvents(bus, startMs, endSeq, signal),
  };
}

/** {@link StreamHistory.read}: the stream's messages decoded as ingest decodes them. */
async function* readStreamEvents(
  bus: Pick<Bus, "nc">,
  startMs: number,
  endSeq: number,
  signal?: AbortSignal,
): AsyncGenerator<StoredEvent[], void, undefined> {
  const frames = new Set<string>();
  for await (const msg of readStreamRange(bus, startMs, endSeq, signal)) {
    const node = nodeFromSubject(msg.subject);
    const events: StoredEvent[] = [];
    const sink: EventSink<StoredEvent> = { add: (ev) => events.push(ev) };
    let source: FrameSource | undefined;
    try {
      source = readBatchSource(msg.data);
      if (source !== undefined) {
        const key = `${node}/${source.bootId}/${source.partition}/${source.seq}`;
        if (frames.has(key)) continue; // published twice: read once, as ingest does
        frames.add(key);
      }
      ingestBatch(sink, msg.subject, msg.data);
    } catch (err) {
      if (!(err instanceof MalformedBatchError)) throw err;
      // As at ingest: a batch that does not decode is its records, lost.
      if (source !== undefined && source.records > 0n)
        events.push(...lostEvents(node, source.records));
    }
    for (const ev of events) ev.streamSeq = msg.info.streamSequence;
    yield events;
  }
}

/** A stored LostEvent for `records` records of `node` lost between collector and observer. */
function lostEvents(node: string, records: bigint): StoredEvent[] {
  const resp = create(GetFlowsResponseSchema, {
    nodeName: node,
    time: timestampFromMs(Date.now()),
    responseTypes: {
      case: "lostEvents",
      value: create(LostEventSchema, {
        source: LostEventSource.OBSERVER_EVENTS_QUEUE,
        numEventsLost: records,
      }),
    },
  });
  return readFlowBatch(toBinary(FlowBatchSchema, create(FlowBatchSchema, { responses: [resp] })));
}

/**
 * Consumes `PERISCOPE_FLOWS` through a durable pull consumer and writes every event of
 * every FlowBatch into the store, through a sort buffer that restores time order across
 * nodes and enrichers. A paused or restarted observer resumes where its durable was;
 * nothing is pushed at it faster than it pulls. Each batch names the raw frame it came
 * from: a frame missing from its collector partition's sequence for `gapHoldMs` is
 * stored as a LostEvent (OBSERVER_EVENTS_QUEUE) with the exact record count and counted
 * in `events_lost_total{where="bus"}`; duplicates (redelivery) are dropped. A malformed
 * payload increments `errors_total{kind="malformed_batch"}` and is logged.
 */
export async function startIngest(opts: IngestOptions): Promise<Ingest> {
  const { store, log, metrics, bus } = opts;
  const subject = subjects.flowsAll;
  const durable = opts.durable ?? "observer";
  const nc: NatsConnection = bus.nc;
  const setUp = async (): Promise<void> => {
    await ensureStream(bus as Bus, "flows");
    await ensureDurable(bus as Bus, FLOWS_STREAM, durable, {
      ackWaitMs: 30_000,
      maxAckPending: 8192,
      startAtNew: true,
      inactiveMs: 3_600_000,
    });
  };
  await setUp();
  bus.onReconnect(() => {
    setUp().catch((err: unknown) => {
      metrics?.errors.inc({ kind: "stream" });
      log.error({ err }, "flows stream not available after reconnect");
    });
  });

  /** True while the start-up replay runs: its events count as seen at their own time. */
  let replaying = true;
  const reorder = new ReorderBuffer<StoredEvent>(
    {
      add(ev, node) {
        store.add(ev, node, replaying ? Number(ev.ns / 1_000_000n) : undefined);
        if (ev.kind === "flow") metrics?.flowsReceived.inc();
        metrics?.ringEntries.set(store.ring.length);
      },
    },
    { delayMs: opts.sortBufferMs ?? 0 },
  );
  /** Stream sequence of the message being handled; its events carry it into the ring. */
  let currentSeq = 0;
  const stamped: EventSink<StoredEvent> = {
    add(ev, node) {
      ev.streamSeq = currentSeq;
      reorder.add(ev, node);
    },
  };
  const ledger = new SequenceLedger({ holdMs: opts.gapHoldMs ?? DEFAULT_GAP_HOLD_MS });
  let lostTotal = 0;
  const gapTimer = setInterval(() => {
    for (const gap of ledger.expire()) {
      const node = gap.key.slice(0, gap.key.indexOf("/"));
      lostTotal += Number(gap.records);
      metrics?.eventsLost.inc({ where: "bus" }, Number(gap.records));
      log.warn(
        {
          node,
          key: gap.key,
          fromSeq: String(gap.fromSeq),
          frames: String(gap.items),
          records: String(gap.records),
        },
        "raw frames never arrived; their records are counted lost",
      );
      if (gap.records > 0n) for (const ev of lostEvents(node, gap.records)) reorder.add(ev, node);
    }
  }, 500);

  let batches = 0;
  let streamGaps = 0;
  let lastStreamSeq = 0;
  const rejects = createIngestRejects(log, metrics);
  /** Stream sequences up to this one came from the replay; the durable skips them. */
  let replayedThrough = 0;
  let skippedLive = 0;
  const handle = (msg: JsMsg): void => {
    batches++;
    metrics?.batchesReceived.inc();
    // This durable's only reader sees every stored batch in stream order; a jump means
    // batches were removed (stream limits) before it got them. The frame ledger turns
    // them into exact record counts once later frames show the hole.
    const streamSeq = msg.info.streamSequence;
    if (!msg.redelivered) {
      if (lastStreamSeq > 0 && streamSeq > lastStreamSeq + 1) {
        const removed = streamSeq - lastStreamSeq - 1;
        streamGaps += removed;
        metrics?.errors.inc({ kind: "stream_gap" }, removed);
        log.warn(
          { fromStreamSeq: lastStreamSeq + 1, batches: removed },
          "flow batches removed from the stream before this observer read them",
        );
      }
      lastStreamSeq = Math.max(lastStreamSeq, streamSeq);
    }
    let source: FrameSource | undefined;
    const node = nodeFromSubject(msg.subject);
    try {
      source = readBatchSource(msg.data);
      if (source !== undefined) {
        const verdict = ledger.accept(
          `${node}/${source.bootId}/${source.partition}`,
          source.seq,
          source.recordsBefore,
          source.records,
        );
        if (verdict !== "accepted") {
          metrics?.errors.inc({ kind: `${verdict}_batch` });
          log.debug({ subject: msg.subject, seq: String(source.seq), verdict }, "batch skipped");
          return;
        }
      }
      currentSeq = streamSeq;
      ingestBatch(stamped, msg.subject, msg.data, rejects, opts.debugEvents);
    } catch (err) {
      if (err instanceof MalformedBatchError) {
        rejects.batch(msg.subject, msg.data.length, err);
        // The frame was accounted as received: its records are lost here.
        if (source !== undefined && source.records > 0n) {
          for (const ev of lostEvents(node, source.records)) reorder.add(ev, node);
        }
        return;
      }
      metrics?.errors.inc({ kind: "ingest" });
      log.warn({ err, subject: msg.subject, kind: "ingest" }, "dropping FlowBatch");
    }
  };

  // The durable exists (setUp) before the replay reads up to the stream's last message:
  // whatever is stored later reaches the durable, whatever the replay covered is skipped
  // there by stream sequence, so the hand-over has neither gaps nor duplicates.
  const startedMs = Date.now();
  const historySinceSec = opts.historySinceSec ?? 0;
  const replay = await replayHistory({
    bus,
    sinceSec: historySinceSec,
    handle,
    now: () => startedMs,
  });
  store.attachHistory(
    await streamHistory(bus, replay, startedMs - Math.max(0, historySinceSec) * 1000),
  );
  replayedThrough = replay.lastSeq;
  lastStreamSeq = Math.max(lastStreamSeq, replay.lastSeq);
  reorder.flush();
  replaying = false;
  log.info(
    {
      batches: replay.batches,
      fromStreamSeq: replay.firstSeq,
      toStreamSeq: replay.lastSeq,
      ms: Math.round(replay.ms),
      ringEntries: store.ring.length,
    },
    "history replayed from the flows stream",
  );

  const consumer = await jetstream(nc).consumers.get(FLOWS_STREAM, durable);
  const messages: ConsumerMessages = await consumer.consume({
    // Bounded in bytes: what a paused observer has been handed waits in its socket.
    max_bytes: 8 * 1024 * 1024,
    expires: 1000,
  });
  const loop = (async () => {
    try {
      for await (const msg of messages) {
        if (msg.info.streamSequence <= replayedThrough) {
          // Already stored by the replay (the durable's backlog from before this start).
          skippedLive++;
          msg.ack();
          continue;
        }
        handle(msg);
        msg.ack();
      }
    } catch (err) {
      metrics?.errors.inc({ kind: "subscription" });
      log.error({ err, subject }, "flow consumer ended with an error");
    }
  })();
  log.info({ stream: FLOWS_STREAM, durable, subject }, "ingesting flows");
  return {
    batches: () => batches,
    lost: () => lostTotal,
    streamGaps: () => streamGaps,
    replay,
    async stop() {
      clearInterval(gapTimer);
      await messages.close();
      await loop;
      if (skippedLive > 0) log.debug({ batches: skippedLive }, "replayed batches skipped live");
      reorder.flush();
      rejects.flush();
    },
  };
}
