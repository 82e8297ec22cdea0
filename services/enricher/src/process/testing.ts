/**
 * What tests of the process and container code share (test code only).
 */
import type { Metrics } from "@periscope/telemetry";

/** Sample values of `periscope_enricher_container_events_total` by kind, from `metrics`. */
export async function containerEventCounts(metrics: Metrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await metrics.registry.metrics()).split("\n")) {
    const m = /^periscope_enricher_container_events_total\{kind="(\w+)"\} (\S+)$/.exec(line);
    if (m) out[m[1] as string] = Number(m[2]);
  }
  return out;
}
