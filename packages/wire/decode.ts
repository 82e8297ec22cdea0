import {
  HDR_LAYOUT,
  HDR_SIZE,
  RECORD_TYPE_TRACE,
  TRACE_FIXED_SIZE,
  TRACE_LAYOUT,
  TRACE_VERSION,
} from "./layout.ts";
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
export interface TraceRecord {
  /** Record type, always `RECORD_TYPE_TRACE`. */
  type: number;
  /** Observation point (hdr.subtype): `OBS_FROM_NETWORK` or `OBS_TO_NETWORK`. */
  obsPoint: number;
  /** Record format version. */
  version: number;
  /** `FLAG_*` bits. */
  flags: number;
  /** CPU that produced the record (hdr.source). */
  cpu: number;
  /** Length of the packet on the wire, bytes. */
  origLen: number;
  /** Captured packet bytes in `data`. */
  capLen: number;
  /** CLOCK_BOOTTIME at observation, nanoseconds. */
  tsBootNs: bigint;
  /** Interface index of the device the packet was seen on (in its own netns). */
  ifindex: number;
  /** skb->mark. */
  mark: number;
  /** Symmetric 5-tuple hash, equal for both directions of a flow; 0 when not IP. */
  flowHash: number;
  /** EtherType of the packet (skb->protocol), e.g. 0x0800; host value. */
  l3Proto: number;
  /** skb->pkt_type (0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing). */
  pktType: number;
  /** Connection-table verdict on the packet: `TRACE_REASON.*` (NEW, ESTABLISHED, REPLY, ...). */
  traceReason: number;
  /** Network namespace cookie of the device, 0 if unknown. */
  netnsCookie: bigint;
  /**
   * First `capLen` bytes of the packet, starting at the Ethernet header, or
   * at the network header when `flags` has `FLAG_L3` (device without L2 header).
   */
  data: Uint8Array;
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
  const { view: v, type, version, capLen } = checkRecord(bytes, TRACE_SPEC);
  const h = HDR_LAYOUT.fields;
  const t = TRACE_LAYOUT.fields;
  return {
    type,
    obsPoint: bytes[h.subtype.offset] ?? 0,
    version,
    flags: bytes[h.flags.offset] ?? 0,
    cpu: v.getUint32(h.source.offset, true),
    origLen: v.getUint32(h.orig_len.offset, true),
    capLen,
    tsBootNs: v.getBigUint64(t.ts_boot_ns.offset, true),
    ifindex: v.getUint32(t.ifindex.offset, true),
    mark: v.getUint32(t.mark.offset, true),
    flowHash: v.getUint32(t.flow_hash.offset, true),
    l3Proto: v.getUint16(t.l3_proto.offset, false),
    pktType: bytes[t.pkt_type.offset] ?? 0,
    traceReason: bytes[t.trace_reason.offset] ?? 0,
    netnsCookie: v.getBigUint64(t.netns_cookie.offset, true),
    data: bytes.subarray(TRACE_FIXED_SIZE, TRACE_FIXED_SIZE + capLen),
  };
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
