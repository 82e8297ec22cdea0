/**
 * What Periscope knows about the owner of an IP address: the endpoint
 * registry stores it, the flow decoder turns it into flow.Endpoint. Treated
 * as immutable once returned from a lookup: the decoder caches the
 * flow.Endpoint it builds per object.
 */
export interface EndpointInfo {
  namespace: string;
  podName: string;
  /** Labels as "key=value" (or "source:key=value") strings. */
  labels: string[];
  nodeName?: string;
  /** Endpoint ID (flow.Endpoint.ID). */
  id?: number;
  /** Numeric security identity (flow.Endpoint.identity); 0 when unknown. */
  identity?: number;
}
