/**
 * @periscope/flow — kernel trace records to Hubble flow.Flow messages, the
 * packet decoder behind them, Hubble's flow filters and its compact / JSON
 * output formats.
 */

export { type DecodedDebugEvent, debugTypeName, decodeDebugEvent } from "./src/debug.ts";
export { type DropDecodeContext, decodeDropFlow, unknownKernelReason } from "./src/drop.ts";
export {
  hubbleReasonForKernel,
  hubbleReasonText,
  humanizeKernelReason,
  KERNEL_TO_HUBBLE_REASON,
} from "./src/drop-reasons.ts";
export type { FilterBuilder } from "./src/filters/builder.ts";
export {
  CEL_FLOW_VARIABLE,
  CelCompileError,
  celEvaluationErrors,
  compileCelExpressions,
  onCelEvaluationError,
} from "./src/filters/cel.ts";
export {
  type FlowPredicate,
  matchAll,
  matchNone,
  matchOne,
} from "./src/filters/combinators.ts";
export {
  compileFilters,
  compileFlowFilter,
  FILTER_BUILDERS,
  SUPPORTED_FILTER_FIELDS,
} from "./src/filters/compile.ts";
export { FilterError } from "./src/filters/errors.ts";
export {
  compileLabelSelector,
  type LabelSelector,
  type ParsedLabel,
  parseLabel,
} from "./src/filters/label-selector.ts";
export {
  addProcessCondition,
  flowProcess,
  PROCESS_EXTENSION_TYPE_URL,
  type ProcessFlag,
  processCondition,
  processText,
} from "./src/filters/process.ts";
export {
  type CompactOptions,
  flowHosts,
  flowSummary,
  flowVerdict,
  formatCompact,
  isNodeStatusWarning,
  joinWithCutOff,
} from "./src/format/compact.ts";
export { DICT_SEPARATOR, formatDict } from "./src/format/dict.ts";
export {
  agentEventDetails,
  agentEventRow,
  debugEventRow,
  type EventFormatOptions,
  formatAgentEventCompact,
  formatAgentEventDict,
  formatDebugEventCompact,
  formatDebugEventDict,
} from "./src/format/events.ts";
export { flowTypeText, verdictText } from "./src/format/flow-type.ts";
export { formatIdentity } from "./src/format/identity.ts";
export { formatJson, formatMessageJson } from "./src/format/json.ts";
export { escapeTerminal, paint } from "./src/format/style.ts";
export { alignColumns, tableHeader, tableRow } from "./src/format/table.ts";
export {
  formatTimestamp,
  isValidTimestamp,
  TIME_LAYOUTS,
  type TimeLayout,
  timeLayoutByName,
} from "./src/format/time.ts";
export {
  DNS_HEADER_LEN,
  DNS_MAX_ANSWERS,
  DNS_MAX_QUESTIONS,
  type DnsAnswer,
  type DnsMessage,
  type DnsQuestion,
  type DnsStreamChunk,
  dnsRcodeText,
  dnsTypeName,
  parseDnsMessage,
  parseDnsTcpStream,
} from "./src/l7/dns.ts";
export { L7_UNPARSED_REASONS, L7ParseError, type L7UnparsedReason } from "./src/l7/errors.ts";
export {
  DNS_OBSERVATION_SOURCE,
  dnsRecord,
  dnsSummary,
  type HttpFields,
  httpHeader,
  httpRecord,
  httpSummary,
  type L7FlowInit,
  l7Flow,
} from "./src/l7/flow.ts";
export {
  HTTP_MAX_HEAD,
  HTTP_MAX_HEADERS,
  type HttpHead,
  type HttpRequestHead,
  type HttpResponseHead,
  looksLikeHttpStart,
  parseHttpHead,
  responseHasNoBody,
} from "./src/l7/http.ts";
export { messageFactory } from "./src/message.ts";
export { observationPoint, trafficDirection } from "./src/observation.ts";
export type { PayloadSink } from "./src/packet/decode.ts";
export { decodePacket, IPPROTO, type LinkType } from "./src/packet/decode.ts";
export { PacketDecodeError } from "./src/packet/errors.ts";
export { ETHERTYPE } from "./src/packet/ethernet.ts";
export { icmpV4TypeCodeText, icmpV6TypeCodeText } from "./src/packet/icmp-names.ts";
export type {
  ArpPacket,
  DecodedPacket,
  EthernetHeader,
  IpHeader,
  L4Header,
  TcpFlags,
  TransportPayload,
} from "./src/packet/types.ts";
export {
  decodePolicyVerdictFlow,
  POLICY_KIND,
  type PolicyVerdictContext,
  policyVerdict,
} from "./src/policy-verdict.ts";
export { flowPorts } from "./src/ports.ts";
export { packetSummary, tcpFlagsText } from "./src/summary.ts";
export {
  bootTimeToTimestamp,
  type DecodeContext,
  decodeTraceFlow,
  toLayer4,
} from "./src/trace.ts";
