import type { NetflowRecord } from "./record.ts";

/**
 * Something that ships flow records somewhere (an IPFIX collector, a NATS subject).
 * `export` resolves once the batch is handed to the transport and rejects when the whole
 * batch is lost; the export queue counts such batches as dropped. Calls never overlap.
 */
export interface NetflowExporter {
  /** Short name used in metrics labels and logs ("ipfix", "nats"). */
  readonly name: string;
  export(records: readonly NetflowRecord[]): Promise<void>;
  /** Releases the transport; called once after the last export. */
  close(): Promise<void>;
}
