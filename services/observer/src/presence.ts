import {
  encodePresenceHeader,
  PRESENCE_HEADER,
  type PresenceBeat,
  type PresenceReport,
} from "@periscope/bus";

/** Where the observer learns which services are alive (a `watchPresence` view). */
export interface PresenceSource {
  report(): PresenceReport;
  /** The latest beat of every live instance; GetNodes and peer.Notify use collectors'. */
  live?(): readonly PresenceBeat[];
}

/** Services the pipeline cannot work without, and what their absence means. */
export const REQUIRED_SERVICES: Readonly<Record<string, string>> = Object.freeze({
  collector: "no packets are being captured",
  enricher: "flows are not being decoded",
});

/**
 * Applies the presence report to a node split: a node whose collector was lost (and
 * has no live one) is unavailable, as Hubble Relay reports a node it cannot reach. Puts
 * the whole report in the {@link PRESENCE_HEADER} response header when `header` is given.
 */
export function applyPresence<N extends { readonly name: string }>(
  presence: PresenceSource | undefined,
  nodes: { connected: N[]; unavailable: N[] },
  header?: Headers,
): { connected: N[]; unavailable: N[] } {
  if (!presence) return nodes;
  const report = presence.report();
  header?.set(PRESENCE_HEADER, encodePresenceHeader(report));
  const down = new Set(report.services.find((s) => s.service === "collector")?.nodesWithout);
  if (down.size === 0) return nodes;
  return {
    connected: nodes.connected.filter((n) => !down.has(n.name)),
    unavailable: [...nodes.unavailable, ...nodes.connected.filter((n) => down.has(n.name))],
  };
}
