import type { Metrics } from "@periscope/telemetry";
import type { DnsNameShare, DnsShareCounts } from "./dns-share.ts";

/** How often the exchange's counts are copied into the metrics, ms. */
const SYNC_MS = 500;
const KINDS = [
  "sent",
  "applied",
  "bad",
  "publishFailed",
] as const satisfies readonly (keyof DnsShareCounts)[];
const LABEL: Record<(typeof KINDS)[number], string> = {
  sent: "sent",
  applied: "applied",
  bad: "bad",
  publishFailed: "publish_failed",
};

/**
 * Exposes `l7_dns_names_shared_total{kind}`: address entries sent to other
 * enrichers (sent), applied from them (applied), messages refused as malformed
 * (bad) and entries whose publish failed, so they stayed local (publish_failed).
 * Returns the function that stops the copying.
 */
export function startDnsShareMetrics(metrics: Metrics, share: DnsNameShare): () => void {
  const shared = metrics.counter(
    "l7_dns_names_shared_total",
    "DNS name entries exchanged with other enrichers, by kind (sent, applied, bad, publish_failed)",
    ["kind"],
  );
  const seen: DnsShareCounts = { sent: 0, applied: 0, bad: 0, publishFailed: 0 };
  const sync = (): void => {
    for (const k of KINDS) {
      const now = share.counts[k];
      if (now > seen[k]) shared.inc({ kind: LABEL[k] }, now - seen[k]);
      seen[k] = now;
    }
  };
  for (const k of KINDS) shared.inc({ kind: LABEL[k] }, 0);
  const timer = setInterval(sync, SYNC_MS);
  return () => {
    clearInterval(timer);
    sync();
  };
}
