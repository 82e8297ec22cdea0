import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { SequenceGap } from "@periscope/bus";
import {
  type FlowBatch,
  FlowBatchSchema,
  FrameSourceSchema,
  GetFlowsResponseSchema,
  LostEventSchema,
  LostEventSource,
} from "@periscope/proto";

/** Where a run of missing raw frames came from. */
export interface GapOrigin {
  readonly node: string;
  readonly bootId: string;
  readonly partition: number;
}

/** Missing frames of one gap that get a batch of their own at most (the rest: see {@link gapBatches}). */
export const MAX_GAP_BATCHES = 256;

/** One FlowBatch standing in for a raw frame that never arrived. */
export interface GapBatch {
  readonly seq: bigint;
  readonly batch: FlowBatch;
}

/**
 * The FlowBatches that account for a gap in a partition's frame sequence: the first
 * missing frame's batch carries one LostEvent with the gap's exact record count
 * (source OBSERVER_EVENTS_QUEUE: lost between the collector and the decoder) and
 * covers all of them (`records`); every further missing frame gets an empty batch
 * with `records = 0`, so a consumer that checks the sequence sees no hole and counts
 * the records once. Beyond {@link MAX_GAP_BATCHES} frames the rest stay a hole of
 * zero records (the observer logs it; nothing is counted twice).
 * Publish each under the frame's msgId: a frame that still turns up is then stored once.
 */
export function gapBatches(gap: SequenceGap, origin: GapOrigin, atMs: number): GapBatch[] {
  const out: GapBatch[] = [];
  const count = gap.items < BigInt(MAX_GAP_BATCHES) ? Number(gap.items) : MAX_GAP_BATCHES;
  for (let i = 0; i < count; i++) {
    const seq = gap.fromSeq + BigInt(i);
    const first = i === 0;
    const batch = create(FlowBatchSchema, {
      responses:
        first && gap.records > 0n
          ? [
              create(GetFlowsResponseSchema, {
                nodeName: origin.node,
                time: timestampFromMs(atMs),
                responseTypes: {
                  case: "lostEvents",
                  value: create(LostEventSchema, {
                    source: LostEventSource.OBSERVER_EVENTS_QUEUE,
                    numEventsLost: gap.records,
                  }),
                },
              }),
            ]
          : [],
      source: create(FrameSourceSchema, {
        bootId: origin.bootId,
        partition: origin.partition,
        seq,
        recordsBefore: first ? gap.recordsBefore : gap.recordsBefore + gap.records,
        records: first ? gap.records : 0n,
      }),
    });
    out.push({ seq, batch });
  }
  return out;
}
