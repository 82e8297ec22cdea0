import type { NetflowExporter, NetflowRecord } from "@periscope/netflow";
import { encodeNetflowRecords, type NetflowLossCounts } from "./netflow-record.ts";

/** Where the NATS exporter publishes (core NATS publish: buffered, never waits). */
export interface NetflowPublisher {
  publish(subject: string, payload: Uint8Array): void;
  /** False while disconnected: batches then fail and are counted as dropped. */
  connected(): boolean;
}

/**
 * Publishes each batch of records as one periscope.netflow.v1.NetflowRecords message
 * on `periscope.netflows.<node>`, for direct subscribers (no stream keeps them). Each
 * message also carries what was lost since the last message that went out (`lost`):
 * `losses()` returns running totals, the exporter sends their growth.
 */
export class NatsNetflowExporter implements NetflowExporter {
  readonly name = "nats";
  readonly #pub: NetflowPublisher;
  readonly #subject: string;
  readonly #losses: () => NetflowLossCounts;
  #reported: NetflowLossCounts = { fallbackLostPackets: 0n, exportDroppedRecords: 0n };

  constructor(pub: NetflowPublisher, subject: string, losses?: () => NetflowLossCounts) {
    this.#pub = pub;
    this.#subject = subject;
    this.#losses = losses ?? (() => this.#reported);
  }

  async export(records: readonly NetflowRecord[]): Promise<void> {
    if (!this.#pub.connected()) throw new Error("NATS is not connected");
    const now = this.#losses();
    const lost = {
      fallbackLostPackets: now.fallbackLostPackets - this.#reported.fallbackLostPackets,
      exportDroppedRecords: now.exportDroppedRecords - this.#reported.exportDroppedRecords,
    };
    this.#pub.publish(this.#subject, encodeNetflowRecords(records, lost));
    this.#reported = { ...now };
  }

  async close(): Promise<void> {}
}
