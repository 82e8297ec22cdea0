/**
 * Latency by stage, from a sample of the bus traffic of one collector node: kernel →
 * raw frame arriving on NATS (collector batching + publish), and kernel → FlowBatch
 * arriving on NATS (+ enricher). Together with the follow client's figure (+ observer
 * + gRPC) this shows where end-to-end latency accumulates. Only every `sampleEvery`-th
 * message is decoded, to keep the tap's own cost small.
 */

import { fromBinary } from "@bufbuild/protobuf";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { sanitizeToken } from "@periscope/bus";
import { FlowBatchSchema } from "@periscope/proto";
import { decodeRawFrame, rawFrameRecords, TRACE_LAYOUT } from "@periscope/wire";
import { LatencySamples, type LatencySummary } from "./report.ts";

const TS_OFFSET = TRACE_LAYOUT.fields.ts_boot_ns.offset;

/** Wall-clock ms now, sub-millisecond. */
const nowMs = (): number => performance.timeOrigin + performance.now();

/** Stage latencies of one node, in ms. */
export interface StageLatency {
  /** Kernel timestamp → raw frame received from NATS. */
  readonly raw: LatencySummary;
  /** Kernel timestamp → FlowBatch received from NATS. */
  readonly flows: LatencySummary;
}

/** A sampling subscriber on `periscope.raw.<node>.>` and `periscope.flows.<node>`. */
export class StageTap {
  readonly #nc: NatsConnection;
  readonly #subs: Subscription[];
  readonly #raw = new LatencySamples();
  readonly #flows = new LatencySamples();

  constructor(nc: NatsConnection, node: string, sampleEvery = 8) {
    this.#nc = nc;
    const token = sanitizeToken(node);
    const failed = (err: Error): void => {
      process.stderr.write(`bench tap on ${node}: ${err.message}\n`);
    };
    let rawSeen = 0;
    let flowsSeen = 0;
    this.#subs = [
      nc.subscribe(`periscope.raw.${token}.>`, {
        callback: (err, msg) => {
          if (err) return failed(err);
          if (rawSeen++ % sampleEvery !== 0) return;
          const at = nowMs();
          const frame = decodeRawFrame(msg.data);
          for (const rec of rawFrameRecords(frame).records) {
            const v = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
            const tsNs = v.getBigUint64(TS_OFFSET, true) + frame.bootToRealtimeNs;
            this.#raw.push(at - Number(tsNs / 1000n) / 1000);
          }
        },
      }),
      nc.subscribe(`periscope.flows.${token}`, {
        callback: (err, msg) => {
          if (err) return failed(err);
          if (flowsSeen++ % sampleEvery !== 0) return;
          const at = nowMs();
          for (const resp of fromBinary(FlowBatchSchema, msg.data).responses) {
            const t =
              resp.responseTypes.case === "flow" ? resp.responseTypes.value.time : undefined;
            if (t !== undefined) this.#flows.push(at - (Number(t.seconds) * 1000 + t.nanos / 1e6));
          }
        },
      }),
    ];
  }

  /** Waits until the server has the subscriptions. */
  async ready(): Promise<void> {
    await this.#nc.flush();
  }

  summary(): StageLatency {
    return { raw: this.#raw.summary(), flows: this.#flows.summary() };
  }

  stop(): void {
    for (const s of this.#subs) s.unsubscribe();
  }
}
