import { TRACE_SUBTYPE } from "@periscope/model";
import { TraceObservationPoint, TrafficDirection } from "@periscope/proto";

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
