import { L7_UNPARSED_REASONS } from "@periscope/flow";
import type { Metrics } from "@periscope/telemetry";
import type { L7Tracker } from "./tracker.ts";

/** How often the tracker's counts are copied into the metrics, ms. */
const SYNC_MS = 500;
const PROTOCOLS = ["dns", "http"] as const;

/**
 * Exposes the L7 tracker's counts as metrics, every label combination
 * registered from the start (so a zero shows before the first event):
 * `l7_flows_total{protocol,type}`, `l7_unparsed_total{protocol,reason}`
 * (reason: truncated, tls, http2, split, malformed), `l7_unmatched_responses_total{protocol}`,
 * `l7_evicted_total` and the gauges `l7_connections`, `l7_dns_pending`, `l7_dns_names`,
 * `l7_pending_head_bytes`.
 * Returns the function that stops the copying.
 */
export function startL7Metrics(metrics: Metrics, tracker: L7Tracker): () => void {
  const flows = metrics.counter("l7_flows_total", "L7 flows read from captured payload", [
    "protocol",
    "type",
  ]);
  const unparsed = metrics.counter(
    "l7_unparsed_total",
    "Payloads on DNS/HTTP ports not turned into L7 flows (they stay L3/L4 flows), by reason",
    ["protocol", "reason"],
  );
  const unmatched = metrics.counter(
    "l7_unmatched_responses_total",
    "L7 responses without a request seen before them (no latency)",
    ["protocol"],
  );
  const evicted = metrics.counter(
    "l7_evicted_total",
    "Connections, queued requests and pending DNS queries dropped because their table was full",
  );
  const connections = metrics.gauge("l7_connections", "TCP connections followed for L7 parsing");
  const pending = metrics.gauge("l7_dns_pending", "DNS queries awaiting their answer");
  const names = metrics.gauge("l7_dns_names", "Addresses in the DNS name cache");
  const headBytes = metrics.gauge(
    "l7_pending_head_bytes",
    "Bytes of HTTP heads split over segments awaiting the rest",
  );
  const seen = new Map<string, number>();
  const add = (key: string, now: number, inc: (n: number) => void): void => {
    const before = seen.get(key) ?? 0;
    if (now > before) inc(now - before);
    seen.set(key, now);
  };
  const sync = (): void => {
    const c = tracker.counts;
    for (const protocol of PROTOCOLS) {
      for (const type of ["request", "response"] as const) {
        add(`f/${protocol}/${type}`, c.flows[protocol][type], (n) =>
          flows.inc({ protocol, type }, n),
        );
      }
      for (const reason of L7_UNPARSED_REASONS) {
        add(`u/${protocol}/${reason}`, c.unparsed[protocol][reason], (n) =>
          unparsed.inc({ protocol, reason }, n),
        );
      }
      add(`m/${protocol}`, c.unmatched[protocol], (n) => unmatched.inc({ protocol }, n));
    }
    add("e", c.evicted, (n) => evicted.inc(n));
    const held = tracker.held;
    connections.set(held.connections);
    pending.set(held.dnsPending);
    names.set(held.dnsNames);
    headBytes.set(held.headBytes);
  };
  for (const protocol of PROTOCOLS) {
    for (const type of ["request", "response"]) flows.inc({ protocol, type }, 0);
    for (const reason of L7_UNPARSED_REASONS) unparsed.inc({ protocol, reason }, 0);
    unmatched.inc({ protocol }, 0);
  }
  const timer = setInterval(sync, SYNC_MS);
  return () => {
    clearInterval(timer);
    sync();
  };
}
