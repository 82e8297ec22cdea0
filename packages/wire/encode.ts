import { TRACE_REASON } from "./constants.ts";
import type { TraceRecord } from "./decode.ts";
import { TRACE_FIXED_SIZE, TRACE_LAYOUT } from "./layout.ts";
import { newRecord } from "./record.ts";

/**
 * A trace record to encode; `capLen` is taken from `data.length`, a missing
 * `traceReason` is written as `TRACE_REASON.UNKNOWN`.
 */
export type TraceRecordInit = Omit<TraceRecord, "capLen" | "traceReason"> & {
  traceReason?: number;
};

export { EncodeRangeError } from "./record.ts";

/**
 * Encodes a trace record exactly as the kernel emits it (`48 + data.length`
 * bytes), for tests and benchmarks.
 * @throws EncodeRangeError when `data` is longer than `MAX_CAPTURE`.
 */
export function encodeTraceRecord(rec: TraceRecordInit): Uint8Array {
  const { bytes, view: v } = newRecord(
    TRACE_FIXED_SIZE,
    { ...rec, subtype: rec.obsPoint },
    rec.data,
  );
  const t = TRACE_LAYOUT.fields;
  v.setBigUint64(t.ts_boot_ns.offset, rec.tsBootNs, true);
  v.setUint32(t.ifindex.offset, rec.ifindex, true);
  v.setUint32(t.mark.offset, rec.mark, true);
  v.setUint32(t.flow_hash.offset, rec.flowHash, true);
  v.setUint16(t.l3_proto.offset, rec.l3Proto, false);
  v.setUint8(t.pkt_type.offset, rec.pktType);
  v.setUint8(t.trace_reason.offset, rec.traceReason ?? TRACE_REASON.UNKNOWN);
  v.setBigUint64(t.netns_cookie.offset, rec.netnsCookie, true);
  return bytes;
}
