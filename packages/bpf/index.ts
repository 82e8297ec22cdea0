/**
 * @periscope/bpf — libbpf through bun:ffi: load and configure trace.bpf.o,
 * attach it with tc (also inside a named netns), drain its ring buffer,
 * read its loss counter and run it on test packets; the libc calls around it
 * (namespaces, netns cookies, clocks) go through the same FFI bindings.
 */
export {
  type CaptureLoadOptions,
  CaptureProgram,
  DEFAULT_CAPTURE_OBJECT,
  DEFAULT_CAPTURE_RING_BYTES,
  removeStaleCaptureFilters,
} from "./capture-program.ts";
export { CLOCK_BOOTTIME, CLOCK_MONOTONIC, CLOCK_REALTIME, clockGettimeNs } from "./clock.ts";
export { type DirChange, DirWatcher, parseInotifyEvents } from "./dir-watcher.ts";
export {
  DEFAULT_DROP_OBJECT,
  DROP_REASON_SLOTS,
  type DropLoadOptions,
  DropProgram,
} from "./drop-program.ts";
export { BpfError, errnoName } from "./errors.ts";
export { FdPoller } from "./fd-poller.ts";
export {
  DEFAULT_FLOW_ENTRIES,
  DEFAULT_FLOW_SPILL_BYTES,
  type FlowDelta,
  FlowTable,
  type FlowTableMaps,
  MAX_FLOW_ENTRIES,
} from "./flow-table.ts";
export { KALLSYMS, KernelSymbols } from "./kallsyms.ts";
export { kernelDropReasons, readBtfEnum, VMLINUX_BTF } from "./kernel-btf.ts";
export { LinkWatcher, type LinkWatcherHandlers } from "./link-watcher.ts";
export {
  type LinkChange,
  listLinks,
  type NetlinkLink,
  parseLinkMessages,
} from "./netlink.ts";
export { NETNS_RUN_DIR, withNetns } from "./netns.ts";
export { netnsCookie } from "./netns-cookie.ts";
export {
  type KernelRuleSet,
  type MapFdLookup,
  POLICY_SLOT_GRACE_MS,
  PolicyMaps,
} from "./policy-maps.ts";
export {
  cgroupV2Root,
  checkMaxArgs,
  DEFAULT_MAX_ARGS,
  DEFAULT_PROC_OBJECT,
  DEFAULT_PROC_RING_BYTES,
  NO_NETNS_COOKIE,
  netnsCookieOfPid,
  PROC_PROGRAM_NAMES,
  type ProcCounters,
  type ProcLoadOptions,
  ProcProgram,
} from "./proc-program.ts";
export { type PackedCopy, type RecordSink, RingBufferReader } from "./ring-buffer.ts";
export {
  type AttachTarget,
  DEFAULT_CT_ENTRIES,
  DEFAULT_RING_BUFFER_BYTES,
  DEFAULT_TRACE_OBJECT,
  MAX_CT_ENTRIES,
  type TestRunResult,
  type TraceLoadOptions,
  TraceProgram,
} from "./trace-program.ts";
export {
  AGGREGATION_LEVELS,
  type AggregationLevel,
  type CaptureRule,
  type ConnectionInfo,
  type ConnectionQuery,
  encodeSettings,
  formatCaptureRule,
  INITIAL_TRACE_SETTINGS,
  parseCaptureRule,
  SettingsError,
  type TraceSettings,
  validateSettings,
} from "./trace-settings.ts";
