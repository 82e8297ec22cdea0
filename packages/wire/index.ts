/**
 * @periscope/wire — layouts of the kernel records (bpf/include/periscope.h)
 * and their decoders.
 */

export * from "./capture.ts";
export * from "./constants.ts";
export {
  DEBUG_LAYOUT,
  DEBUG_SIZE,
  type DebugRecord,
  type DebugRecordInit,
  decodeDebugRecord,
  encodeDebugRecord,
} from "./debug.ts";
export {
  decodeRecordType,
  decodeTraceRecord,
  type MalformedReason,
  MalformedRecordError,
  readTraceFlowHash,
  type TraceRecord,
} from "./decode.ts";
export {
  DROP_FIXED_SIZE,
  DROP_LAYOUT,
  DROP_RODATA,
  type DropRecord,
  type DropRecordInit,
  decodeDropRecord,
  encodeDropRecord,
} from "./drop.ts";
export { EncodeRangeError, encodeTraceRecord, type TraceRecordInit } from "./encode.ts";
export { computeFlowHash, readFlowHash } from "./flow-hash.ts";
export * from "./flow-table.ts";
export {
  CAPTURE_RULE_LAYOUT,
  CT_ENTRY_LAYOUT,
  CT_KEY_LAYOUT,
  type FieldLayout,
  FLAG_TRUNCATED,
  HDR_LAYOUT,
  HDR_SIZE,
  HEADER_CONSTANTS,
  OBS_FROM_NETWORK,
  OBS_TO_NETWORK,
  RECORD_TYPE_TRACE,
  SETTINGS_LAYOUT,
  type StructLayout,
  TRACE_CONFIG_LAYOUT,
  TRACE_FIXED_SIZE,
  TRACE_LAYOUT,
  TRACE_VERSION,
} from "./layout.ts";
export * from "./policy-rules.ts";
export * from "./policy-verdict.ts";
export * from "./proc.ts";
export * from "./src/frame.ts";
export * from "./src/packed.ts";
