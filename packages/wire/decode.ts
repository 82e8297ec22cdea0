import { MAX_CAPTURE } from "@periscope/model";
import {
  HDR_LAYOUT,
  HDR_SIZE,
  RECORD_TYPE_TRACE,
  TRACE_FIXED_SIZE,
  TRACE_LAYOUT,
  TRACE_VERSION,
} from "./layout.ts";

/** What is wrong with a record, usable as a metrics label. */
export type MalformedReason =
  | "too_short"
  | "wrong_type"
  | "bad_version"
  | "cap_len_beyond_sample"
  | "trailing_bytes"
  | "cap_len_too_large";

/** A record that cannot be decoded; `reason` names the check that failed. */
export class MalformedRecordError extends Error {
  override readonly name = "MalformedRecordError";
  readonly reason: MalformedReason;

  constructor(reason: MalformedReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

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

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reads the record type byte after checking that a full common header is present.
 * @throws MalformedRecordError when `bytes` is shorter than the 16-byte header.
 */
export function decodeRecordType(bytes: Uint8Array): number {
  if (bytes.byteLength < HDR_SIZE) {
    throw new MalformedRecordError(
      "too_short",
      `record too short: ${bytes.byteLength} bytes, header needs ${HDR_SIZE}`,
    );
  }
  return bytes[HDR_LAYOUT.fields.type.offset] ?? 0;
}

/**
 * Decodes one trace record (a ring buffer sample of exactly `48 + cap_len` bytes).
 * `data` is a view into `bytes`, not a copy.
 * @throws MalformedRecordError naming the failed check: length, type, version, cap_len.
 */
export function decodeTraceRecord(bytes: Uint8Array): TraceRecord {
  const type = decodeRecordType(bytes);
  if (type !== RECORD_TYPE_TRACE) {
    throw new MalformedRecordError(
      "wrong_type",
      `not a trace record: type ${type}, expected ${RECORD_TYPE_TRACE}`,
    );
  }
  const h = HDR_LAYOUT.fields;
  const version = bytes[h.version.offset] ?? 0;
  if (version !== TRACE_VERSION) {
    throw new MalformedRecordError(
      "bad_version",
      `trace record version ${version} unsupported, expected ${TRACE_VERSION}`,
    );
  }
  if (bytes.byteLength < TRACE_FIXED_SIZE) {
    throw new MalformedRecordError(
      "too_short",
      `trace record too short: ${bytes.byteLength} bytes, fixed part needs ${TRACE_FIXED_SIZE}`,
    );
  }
  const v = viewOf(bytes);
  const capLen = v.getUint32(h.cap_len.offset, true);
  if (capLen > MAX_CAPTURE) {
    throw new MalformedRecordError(
      "cap_len_too_large",
      `trace record cap_len ${capLen} exceeds maximum capture ${MAX_CAPTURE}`,
    );
  }
  const available = bytes.byteLength - TRACE_FIXED_SIZE;
  if (capLen > available) {
    throw new MalformedRecordError(
      "cap_len_beyond_sample",
      `trace record cap_len ${capLen} beyond sample: only ${available} bytes follow the fixed part`,
    );
  }
  if (capLen < available) {
    throw new MalformedRecordError(
      "trailing_bytes",
      `trace record has ${available - capLen} bytes after cap_len ${capLen}`,
    );
  }
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
    throw new MalformedRecordError(
      "wrong_type",
      `not a trace record: type ${type}, expected ${RECORD_TYPE_TRACE}`,
    );
  }
  if (bytes.byteLength < TRACE_FIXED_SIZE) {
    throw new MalformedRecordError(
      "too_short",
      `trace record too short: ${bytes.byteLength} bytes, fixed part needs ${TRACE_FIXED_SIZE}`,
    );
  }
  return viewOf(bytes).getUint32(TRACE_LAYOUT.fields.flow_hash.offset, true);
}
