import {
  HDR_LAYOUT,
  HDR_SIZE,
  RECORD_TYPE_TRACE,
  TRACE_FIXED_SIZE,
  TRACE_LAYOUT,
  TRACE_VERSION,
} from "./layout.ts";
import { type PacketRecordBase, readPacketFields } from "./packet-record.ts";
import {
  checkRecord,
  defaultWording,
  MalformedRecordError,
  type RecordSpec,
  viewOf,
} from "./record.ts";

export { type MalformedReason, MalformedRecordError } from "./record.ts";

/** What a trace record must look like. */
const TRACE_SPEC: RecordSpec = {
  name: "trace",
  type: RECORD_TYPE_TRACE,
  version: TRACE_VERSION,
  fixedSize: TRACE_FIXED_SIZE,
};
const TRACE_WORDING = defaultWording(TRACE_SPEC);

/** A decoded `struct pscope_trace` (record type 4). */
export interface TraceRecord extends PacketRecordBase {
  /** Observation point (hdr.subtype): `OBS_FROM_NETWORK` or `OBS_TO_NETWORK`. */
  obsPoint: number;
  /** skb->mark. */
  mark: number;
  /** skb->pkt_type (0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing). */
  pktType: number;
  /** Connection-table verdict on the packet: `TRACE_REASON.*` (NEW, ESTABLISHED, REPLY, ...). */
  traceReason: number;
}

/**
 * Reads the record type byte after checking that a full common header is present.
 * @throws MalformedRecordError when `bytes` is shorter than the 16-byte header.
 */
export function decodeRecordType(bytes: Uint8Array): number {
  if (bytes.byteLength < HDR_SIZE) {
    throw new MalformedRecordError("too_short", TRACE_WORDING.headerTooShort(bytes.byteLength));
  }
  return bytes[HDR_LAYOUT.fields.type.offset] ?? 0;
}

/**
 * Decodes one trace record (a ring buffer sample of exactly `48 + cap_len` bytes).
 * `data` is a view into `bytes`, not a copy.
 * @throws MalformedRecordError naming the failed check: length, type, version, cap_len.
 */
export function decodeTraceRecord(bytes: Uint8Array): TraceRecord {
  const rec = checkRecord(bytes, TRACE_SPEC);
  const t = TRACE_LAYOUT.fields;
  // Filled in place: spreading the shared fields into a new object halves the decode rate.
  const out = readPacketFields(bytes, rec, TRACE_LAYOUT) as TraceRecord;
  out.obsPoint = bytes[HDR_LAYOUT.fields.subtype.offset] ?? 0;
  out.mark = rec.view.getUint32(t.mark.offset, true);
  out.pktType = bytes[t.pkt_type.offset] ?? 0;
  out.traceReason = bytes[t.trace_reason.offset] ?? 0;
  return out;
}

/**
 * Reads only the flow hash of a trace record (for partitioning without a full decode).
 * @throws MalformedRecordError when the record is not a trace record or is too short.
 */
export function readTraceFlowHash(bytes: Uint8Array): number {
  const type = decodeRecordType(bytes);
  if (type !== RECORD_TYPE_TRACE) {
    throw new MalformedRecordError("wrong_type", TRACE_WORDING.wrongType(type));
  }
  if (bytes.byteLength < TRACE_FIXED_SIZE) {
    throw new MalformedRecordError("too_short", TRACE_WORDING.fixedTooShort(bytes.byteLength));
  }
  return viewOf(bytes).getUint32(TRACE_LAYOUT.fields.flow_hash.offset, true);
}
