/**
 * Byte layouts of the records in bpf/include/periscope.h. Every number here
 * is checked against the BTF of the compiled object and the header's
 * #defines by layout.test.ts; change both sides together. The capture
 * limits and the type/sub-type numbers are defined once in @periscope/model.
 */
import { DEFAULT_CAPTURE, MAX_CAPTURE, MESSAGE_TYPE, TRACE_SUBTYPE } from "@periscope/model";
import { RECORD_CONSTANTS } from "./constants.ts";
import { HDR_SIZE } from "./header.ts";

export { HDR_LAYOUT, HDR_SIZE } from "./header.ts";

/** One field of a kernel record: byte offset from the start of the struct and size in bytes. */
export interface FieldLayout {
  readonly offset: number;
  readonly size: number;
}

/** A C struct: its `sizeof` and its members by C name. */
export interface StructLayout {
  readonly size: number;
  readonly fixedSize?: number;
  readonly fields: Readonly<Record<string, FieldLayout>>;
}

/** Record type of a trace record (`PSCOPE_REC_TRACE`): Cilium's MessageTypeTrace. */
export const RECORD_TYPE_TRACE = MESSAGE_TYPE.TRACE;
/** Format version of trace records (`PSCOPE_TRACE_VERSION`). */
export const TRACE_VERSION = 2;
/** Observation point: tc ingress, packet arrived on the device (`PSCOPE_OBS_FROM_NETWORK`). */
export const OBS_FROM_NETWORK = TRACE_SUBTYPE.FROM_NETWORK;
/** Observation point: tc egress, packet about to leave the device (`PSCOPE_OBS_TO_NETWORK`). */
export const OBS_TO_NETWORK = TRACE_SUBTYPE.TO_NETWORK;
/** Header flag: cap_len < orig_len (`PSCOPE_F_TRUNCATED`). */
export const FLAG_TRUNCATED = 0x01;

/** Size of the fixed part of a trace record; `cap_len` packet bytes follow. */
export const TRACE_FIXED_SIZE = 48;

/**
 * `struct pscope_trace`. `size` is the C struct size (fixed part plus the
 * largest capture); a sample on the wire is `TRACE_FIXED_SIZE + cap_len` bytes.
 * `l3_proto` is stored in network byte order; everything else is host order.
 */
export const TRACE_LAYOUT = {
  size: TRACE_FIXED_SIZE + MAX_CAPTURE,
  fixedSize: TRACE_FIXED_SIZE,
  fields: {
    hdr: { offset: 0, size: HDR_SIZE },
    ts_boot_ns: { offset: 16, size: 8 },
    ifindex: { offset: 24, size: 4 },
    mark: { offset: 28, size: 4 },
    flow_hash: { offset: 32, size: 4 },
    l3_proto: { offset: 36, size: 2 },
    pkt_type: { offset: 38, size: 1 },
    trace_reason: { offset: 39, size: 1 },
    netns_cookie: { offset: 40, size: 8 },
    data: { offset: TRACE_FIXED_SIZE, size: MAX_CAPTURE },
  },
} as const satisfies StructLayout;

/** `struct pscope_trace_config`, written at offset 0 of the object's `.rodata` before load. */
export const TRACE_CONFIG_LAYOUT = {
  size: 8,
  fields: {
    capture_len: { offset: 0, size: 4 },
    _pad0: { offset: 4, size: 4 },
  },
} as const satisfies StructLayout;

/** `struct pscope_capture_rule`: one capture-length override in the settings map. */
export const CAPTURE_RULE_LAYOUT = {
  size: 8,
  fields: {
    proto: { offset: 0, size: 1 },
    _pad0: { offset: 1, size: 1 },
    port: { offset: 2, size: 2 },
    len: { offset: 4, size: 2 },
    _pad1: { offset: 6, size: 2 },
  },
} as const satisfies StructLayout;

/** `struct pscope_settings`: the single value of the trace object's `settings` array map. */
export const SETTINGS_LAYOUT = {
  size: 80,
  fields: {
    aggregation: { offset: 0, size: 4 },
    report_interval_ms: { offset: 4, size: 4 },
    debug: { offset: 8, size: 4 },
    n_capture_rules: { offset: 12, size: 4 },
    capture_rules: { offset: 16, size: 64 },
  },
} as const satisfies StructLayout;

/** `struct pscope_ct_key`: key of the `conntrack` map (addresses in network byte order). */
export const CT_KEY_LAYOUT = {
  size: 56,
  fields: {
    netns_cookie: { offset: 0, size: 8 },
    ifindex: { offset: 8, size: 4 },
    proto: { offset: 12, size: 1 },
    family: { offset: 13, size: 1 },
    _pad0: { offset: 14, size: 2 },
    addr_lo: { offset: 16, size: 16 },
    addr_hi: { offset: 32, size: 16 },
    port_lo: { offset: 48, size: 2 },
    port_hi: { offset: 50, size: 2 },
    _pad1: { offset: 52, size: 4 },
  },
} as const satisfies StructLayout;

/** `struct pscope_ct_entry`: value of the `conntrack` map; index 0 of the pairs is the initiator's side. */
export const CT_ENTRY_LAYOUT = {
  size: 72,
  fields: {
    first_seen_ns: { offset: 0, size: 8 },
    last_seen_ns: { offset: 8, size: 8 },
    last_report_ns: { offset: 16, size: 8 },
    packets: { offset: 24, size: 16 },
    bytes: { offset: 40, size: 16 },
    tcp_flags: { offset: 56, size: 2 },
    reported_flags: { offset: 58, size: 2 },
    initiator_is_lo: { offset: 60, size: 1 },
    closing: { offset: 61, size: 1 },
    policy_action: { offset: 62, size: 1 },
    _pad0: { offset: 63, size: 1 },
    policy_rev: { offset: 64, size: 4 },
    policy_rule_id: { offset: 68, size: 4 },
  },
} as const satisfies StructLayout;

/**
 * Every `#define` of periscope.h with the TS constant that mirrors it; the
 * layout test fails when the header gains a constant missing here.
 */
export const HEADER_CONSTANTS: Readonly<Record<string, number>> = {
  PSCOPE_REC_TRACE: RECORD_TYPE_TRACE,
  PSCOPE_TRACE_VERSION: TRACE_VERSION,
  PSCOPE_OBS_FROM_NETWORK: OBS_FROM_NETWORK,
  PSCOPE_OBS_TO_NETWORK: OBS_TO_NETWORK,
  PSCOPE_F_TRUNCATED: FLAG_TRUNCATED,
  PSCOPE_MAX_CAPTURE: MAX_CAPTURE,
  PSCOPE_DEFAULT_CAPTURE: DEFAULT_CAPTURE,
  ...RECORD_CONSTANTS,
};
