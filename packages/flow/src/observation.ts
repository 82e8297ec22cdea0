import { TraceObservationPoint, TrafficDirection } from "@periscope/proto";

/**
 * Cilium trace sub-types (monitor TRACE_TO_LXC ... TRACE_TO_CRYPTO), which
 * Periscope's trace records use as their subtype byte.
 */
export const TRACE_SUBTYPE = {
  TO_ENDPOINT: 0,
  TO_PROXY: 1,
  TO_HOST: 2,
  TO_STACK: 3,
  TO_OVERLAY: 4,
  FROM_ENDPOINT: 5,
  FROM_PROXY: 6,
  FROM_HOST: 7,
  FROM_STACK: 8,
  FROM_OVERLAY: 9,
  FROM_NETWORK: 10,
  TO_NETWORK: 11,
  FROM_CRYPTO: 12,
  TO_CRYPTO: 13,
} as const;

/**
 * flow.TraceObservationPoint for a trace sub-type. The enum numbers equal the
 * sub-types except TO_ENDPOINT (sub-type 0, enum 101, so that the enum's zero
 * value keeps meaning "unknown", as in Hubble). Unknown sub-types map to
 * UNKNOWN_POINT.
 */
export function observationPoint(subtype: number): TraceObservationPoint {
  if (subtype === TRACE_SUBTYPE.TO_ENDPOINT) return TraceObservationPoint.TO_ENDPOINT;
  if (subtype >= TRACE_SUBTYPE.TO_PROXY && subtype <= TRACE_SUBTYPE.TO_CRYPTO) {
    return subtype as TraceObservationPoint;
  }
  return TraceObservationPoint.UNKNOWN_POINT;
}

/**
 * Traffic direction implied by where a packet was seen: tc ingress
 * (FROM_NETWORK) is INGRESS, tc egress (TO_NETWORK) is EGRESS; other points
 * carry no direction without connection-tracking state.
 */
export function trafficDirection(subtype: number): TrafficDirection {
  if (subtype === TRACE_SUBTYPE.FROM_NETWORK) return TrafficDirection.INGRESS;
  if (subtype === TRACE_SUBTYPE.TO_NETWORK) return TrafficDirection.EGRESS;
  return TrafficDirection.TRAFFIC_DIRECTION_UNKNOWN;
}

/**
 * Name of a trace sub-type as Hubble prints it in the compact TYPE column
 * ("to-network", "from-endpoint", ...); the number for unknown sub-types.
 */
export function traceObservationName(subtype: number): string {
  return TRACE_NAMES[subtype] ?? String(subtype);
}

const TRACE_NAMES: Readonly<Record<number, string>> = {
  0: "to-endpoint",
  1: "to-proxy",
  2: "to-host",
  3: "to-stack",
  4: "to-overlay",
  5: "from-endpoint",
  6: "from-proxy",
  7: "from-host",
  8: "from-stack",
  9: "from-overlay",
  10: "from-network",
  11: "to-network",
  12: "from-crypto",
  13: "to-crypto",
};
