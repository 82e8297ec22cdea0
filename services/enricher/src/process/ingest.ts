import { type ConsumerMessages, DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { type Bus, ensureStream, PROC_STREAM, subjects } from "@periscope/bus";
import type { Logger } from "@periscope/telemetry";
import {
  decodeProcRecord,
  decodeRawFrame,
  RECORD_TYPE_PROC,
  rawFrameRecords,
} from "@periscope/wire";
import type { ProcessCache } from "./process-cache.ts";

/** Counters of the lifecycle reader. */
export interface ProcessIngestStats {
  frames: number;
  records: number;
  /** Records that did not decode (counted, skipped). */
  malformed: number;
  /** Lifecycle records the kernel could not queue, as the frames reported them. */
  kernelLost: bigint;
}

/** A running reader of process lifecycle frames. */
export interface ProcessIngest {
  readonly stats: ProcessIngestStats;
  stop(): Promise<void>;
}

/**
 * Reads every node's process lifecycle frames (`periscope.proc.>`, stream PERISCOPE_PROC)
 * from `startMs` on (the moment just before the /proc backfill) through an ordered
 * consumer of its own, and applies their exec/fork/exit records to `cache`. Bad frames and
 * records are counted and logged, never fatal.
 */
export async function startProcessIngest(opts: {
  readonly bus: Bus;
  readonly log: Logger;
  readonly cache: ProcessCache;
  readonly startMs: number;
  readonly onError?: (kind: "malformed_proc_frame" | "malformed_proc_record") => void;
}): Promise<ProcessIngest> {
  const { bus, log, cache } = opts;
  await ensureStream(bus, "proc");
  const consumer = await jetstream(bus.nc).consumers.get(PROC_STREAM, {
    filter_subjects: subjects.procAll,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(opts.startMs).toISOString(),
  });
  const messages: ConsumerMessages = await consumer.consume({ max_messages: 256 });
  const stats: ProcessIngestStats = { frames: 0, records: 0, malformed: 0, kernelLost: 0n };
  const loop = (async () => {
    try {
      for await (const msg of messages) {
        let records: readonly Uint8Array[];
        try {
          const frame = decodeRawFrame(msg.data);
          stats.kernelLost += frame.kernelLost;
          const split = rawFrameRecords(frame);
          stats.malformed += split.malformed;
          records = split.records;
          stats.frames++;
        } catch (err) {
          opts.onError?.("malformed_proc_frame");
          log.warn({ err, subject: msg.subject }, "undecodable process frame skipped");
          continue;
        }
        for (const bytes of records) {
          if (bytes[0] !== RECORD_TYPE_PROC) continue;
          try {
            cache.apply(decodeProcRecord(bytes));
            stats.records++;
          } catch (err) {
            stats.malformed++;
            opts.onError?.("malformed_proc_record");
            log.debug({ err }, "undecodable process record skipped");
          }
        }
      }
    } catch (err) {
      log.error({ err }, "process lifecycle consumer ended with an error");
    }
  })();
  return {
    stats,
    async stop() {
      await messages.close();
      await loop;
    },
  };
}
