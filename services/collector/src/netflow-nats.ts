import type { NetflowExporter, NetflowRecord } from "@periscope/netflow";
import { encodeNetflowRecords } from "./netflow-record.ts";

/** Where the NATS exporter publishes (core NATS publish: buffered, never waits). */
export interface NetflowPublisher {
  publish(subject: string, payload: Uint8Array): void;
  /** False while disconnected: batches then fail and are counted as dropped. */
  connected(): boolean;
}

/**
 * Publishes each batch of records as one periscope.netflow.v1.NetflowRecords message
 * on `periscope.netflows.<node>`, for direct subscribers (no stream keeps them).
 */
export class NatsNetflowExporter implements NetflowExporter {
  readonly name = "nats";
  readonly #pub: NetflowPublisher;
  readonly #subject: string;

  constructor(pub: NetflowPublisher, subject: string) {
    this.#pub = pub;
    this.#subject = subject;
  }

  async export(records: readonly NetflowRecord[]): Promise<void> {
    if (!this.#pub.connected()) throw new Error("NATS is not connected");
    this.#pub.publish(this.#subject, encodeNetflowRecords(records));
  }

  async close(): Promise<void> {}
}
