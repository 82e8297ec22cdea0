/**
 * @periscope/netflow — flow records evicted from the kernel, the bounded queue that hands
 * them to exporters, and the IPFIX (RFC 7011) encoder and UDP exporter.
 */
export type { NetflowExporter } from "./src/exporter.ts";
export {
  FLOW_END_REASON,
  IE,
  TEMPLATE_ID_V4,
  TEMPLATE_ID_V6,
  TEMPLATE_V4,
  TEMPLATE_V6,
  type Template,
  type TemplateField,
} from "./src/ipfix/elements.ts";
export {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_TEMPLATE_INTERVAL_MS,
  IPFIX_VERSION,
  IpfixEncoder,
  type IpfixEncoderOptions,
} from "./src/ipfix/encoder.ts";
export {
  IpfixExporter,
  type IpfixExporterOptions,
  type IpfixExporterStats,
} from "./src/ipfix/exporter.ts";
export {
  type NetflowDrop,
  type NetflowDropKind,
  NetflowExportQueue,
  type NetflowExportQueueOptions,
  type NetflowLaneStats,
} from "./src/queue.ts";
export type {
  NetflowDirection,
  NetflowDrops,
  NetflowEndpoint,
  NetflowEndReason,
  NetflowRecord,
} from "./src/record.ts";
export { netflowRecordProblem } from "./src/validate.ts";
