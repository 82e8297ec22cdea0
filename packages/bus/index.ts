export {
  type Bus,
  type ConnectBusOptions,
  connectBus,
  DEFAULT_LOCAL_STORE_DIR,
  DEFAULT_NATS_URL,
} from "./connect.ts";
export {
  type DropLocationTable,
  type DropReasonRegistry,
  type DropReasonTable,
  dropLocationsKey,
  dropReasonsKey,
  KERNEL_BUCKET,
  openDropReasonRegistry,
  parseStoredDropLocations,
  parseStoredDropReasons,
  storedDropLocationsJson,
  storedDropReasonsJson,
} from "./drop-reasons.ts";
export {
  ENDPOINTS_BUCKET,
  type EndpointRecord,
  type EndpointRegistry,
  endpointKey,
  normalizeIp,
  openEndpointRegistry,
  parseStoredEndpoint,
} from "./endpoints.ts";
export { BusConnectError, BusInputError, BusStreamError } from "./errors.ts";
export {
  INTERFACES_BUCKET,
  type InterfaceInfo,
  type InterfaceRecord,
  type InterfaceRegistry,
  interfaceKey,
  interfaceNodeFilter,
  openInterfaceRegistry,
  parseStoredInterface,
  storedInterfaceJson,
} from "./interfaces.ts";
export type { KvRegistry } from "./kv-cache.ts";
export {
  claimLease,
  DEFAULT_LEASE_TTL_MS,
  DEFAULT_RAW_PARTITIONS,
  fairShare,
  LEASES_BUCKET,
  type LeaseValue,
  liveKeys,
  openLeaseBucket,
  parseLeaseValue,
  putBeat,
  releaseLease,
  renewLease,
} from "./leases.ts";
export type { BusLogger } from "./log.ts";
export {
  openPolicyRuleNames,
  openPolicyStore,
  POLICIES_BUCKET,
  type PolicyChange,
  type PolicyRuleName,
  type PolicyRuleNames,
  type PolicyStore,
  type PolicyWatch,
  type StoredPolicy,
} from "./policies.ts";
export {
  type AnnounceOptions,
  announcePresence,
  type Heartbeat,
  type HeartbeatOptions,
  PRESENCE_INTERVAL_MS,
  type PresenceWatch,
  reportExited,
  startHeartbeat,
  watchPresence,
} from "./presence.ts";
export {
  encodeBeat,
  PRESENCE_PREFIX,
  type PresenceBeat,
  type PresenceState,
  parseBeat,
  presenceInstance,
  presenceSubjects,
} from "./presence-beat.ts";
export {
  decodePresenceHeader,
  encodePresenceHeader,
  PRESENCE_HEADER,
} from "./presence-header.ts";
export {
  type InstanceState,
  type InstanceStatus,
  type PresenceReport,
  PresenceTable,
  type PresenceTableOptions,
  type ServiceState,
  type ServiceStatus,
} from "./presence-table.ts";
export {
  BATCH_FINAL,
  CAPTURE_BATCH_HEADER,
  CAPTURE_PACKET_HEADER,
  type CaptureBatch,
  CaptureBatchWriter,
  type CapturedPacket,
  captureSubject,
  captureSubjectAll,
  decodeCaptureBatch,
  encodeCaptureBatch,
  type NodeRecordStats,
  PACKET_L3,
  RECORD_MAX_CAPTURE_LEN,
  RECORD_MAX_FILTERS,
  RECORD_VERB,
  type RecordControl,
  type RecordFilterSpec,
  type RecordReply,
  recordControlSubject,
} from "./recording.ts";
export {
  type SequenceGap,
  SequenceLedger,
  type SequenceLedgerOptions,
  type SequenceVerdict,
} from "./sequence.ts";
export {
  DEFAULT_STREAM_LIMITS,
  DUPLICATE_WINDOW_MS,
  type DurableOptions,
  EVENTS_STREAM,
  ensureDurable,
  ensureStream,
  FLOWS_STREAM,
  PROC_STREAM,
  RAW_STREAM,
  removeDurable,
  type StreamKind,
  type StreamLimits,
  streamConfig,
} from "./streams.ts";
export { sanitizeToken, subjects } from "./subjects.ts";
