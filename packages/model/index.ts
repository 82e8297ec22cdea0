/**
 * @periscope/model — the vocabulary every other package shares and none of
 * them owns: endpoint info, Cilium message types and trace observation
 * points with their names, capture limits, RPC status labels, address text,
 * and a stream line splitter. No dependencies, so anything may import it.
 */
export { canonicalIp, formatIPv4, formatIPv6, formatMac, parseIp } from "./address.ts";
export { DEFAULT_CAPTURE, MAX_CAPTURE } from "./capture.ts";
export type { EndpointInfo } from "./endpoint.ts";
export { forwardLines } from "./lines.ts";
export {
  MESSAGE_TYPE,
  MESSAGE_TYPE_BY_NAME,
  type MessageType,
  messageTypeByName,
} from "./message-type.ts";
export { pause } from "./pause.ts";
export { rpcCodeLabel } from "./rpc.ts";
export {
  TRACE_SUBTYPE,
  TRACE_SUBTYPE_BY_NAME,
  type TraceSubtype,
  traceSubtypeByName,
  traceSubtypeName,
} from "./trace.ts";
