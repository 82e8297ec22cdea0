import { BusInputError } from "./errors.ts";

/**
 * Makes `s` usable as one NATS subject token: every character outside
 * `[A-Za-z0-9_-]` becomes `_`; an empty string becomes `_`.
 */
export function sanitizeToken(s: string): string {
  const t = s.replace(/[^A-Za-z0-9_-]/g, "_");
  return t === "" ? "_" : t;
}

function partitionToken(partition: number): string {
  if (!Number.isInteger(partition) || partition < 0) {
    throw new BusInputError(`partition must be a non-negative integer, got ${partition}`);
  }
  return String(partition);
}

/** Subject names from docs/internals.md ("NATS subjects"). Node names are sanitized. */
export const subjects = {
  /** `periscope.raw.<node>.<partition>` — RawFrames, collector → enrichers. */
  raw: (node: string, partition: number): string =>
    `periscope.raw.${sanitizeToken(node)}.${partitionToken(partition)}`,
  /** `periscope.raw.<node>.*` — every partition of one node. */
  rawNode: (node: string): string => `periscope.raw.${sanitizeToken(node)}.*`,
  /** `periscope.raw.*.<partition>` — one partition of every node. */
  rawPartition: (partition: number): string => `periscope.raw.*.${partitionToken(partition)}`,
  /** Every raw subject of every node. */
  rawAll: "periscope.raw.>",
  /** `periscope.flows.<node>` — FlowBatches, enricher → observer. */
  flows: (node: string): string => `periscope.flows.${sanitizeToken(node)}`,
  /** Every flows subject. */
  flowsAll: "periscope.flows.>",
  /** `periscope.ctl.<node>.<verb>` — control messages to a collector. */
  ctl: (node: string, verb: string): string =>
    `periscope.ctl.${sanitizeToken(node)}.${sanitizeToken(verb)}`,
  /** Every control subject. */
  ctlAll: "periscope.ctl.>",
  /** `periscope.agent.<node>` — agent events (observer.GetAgentEventsResponse), collector → observer, monitor. */
  agent: (node: string): string => `periscope.agent.${sanitizeToken(node)}`,
  /** Every agent-event subject. */
  agentAll: "periscope.agent.>",
  /** `periscope.netflows.<node>` — flow records (periscope.netflow.v1.NetflowRecords), collector → subscribers. */
  netflows: (node: string): string => `periscope.netflows.${sanitizeToken(node)}`,
  /** Every flow-record subject. */
  netflowsAll: "periscope.netflows.>",
  /** `periscope.proc.<node>` — RawFrames of process exec/fork/exit records, collector → enrichers. */
  proc: (node: string): string => `periscope.proc.${sanitizeToken(node)}`,
  /** Every process-record subject. */
  procAll: "periscope.proc.>",
  /** Every debug-event subject (`periscope.debug.<node>`, reserved; kernel debug records travel in FlowBatches). */
  debugAll: "periscope.debug.>",
} as const;
