import { MAX_CAPTURE } from "@periscope/model";
import { TRACE_REASON } from "./constants.ts";
import type { TraceRecord } from "./decode.ts";
import { HDR_LAYOUT, TRACE_FIXED_SIZE, TRACE_LAYOUT } from "./layout.ts";

/**
 * A trace record to encode; `capLen` is taken from `data.length`, a missing
 * `traceReason` is written as `TRACE_REASON.UNKNOWN`.
 */
export type TraceRecordInit = Omit<TraceRecord, "capLen" | "traceReason"> & {
  traceReason?: number;
};

/** A value that does not fit the field it is meant for. */
export class EncodeRangeError extends Error {
  override readonly name = "EncodeRangeError";
}

/**
 * Encodes a trace record exactly as the kernel emits it (`48 + data.length`
 * bytes), for tests and benchmarks.
 * @throws EncodeRangeError when `data` is longer than `MAX_CAPTURE`.
 */
export function encodeTraceRecord(rec: TraceRecordInit): Uint8Array {
  if (rec.data.length > MAX_CAPTURE) {
    throw new EncodeRangeError(`data is ${rec.data.length} bytes, maximum capture ${MAX_CAPTURE}`);
  }
  const out = new Uint8Array(TRACE_FIXED_SIZE + rec.data.length);
  const v = new DataView(out.buffer);
  const h = HDR_LAYOUT.fields;
  const t = TRACE_LAYOUT.fields;
  v.setUint8(h.type.offset, rec.type);
  v.setUint8(h.subtype.offset, rec.obsPoint);
  v.setUint8(h.version.offset, rec.version);
  v.setUint8(h.flags.offset, rec.flags);
  v.setUint32(h.source.offset, rec.cpu, true);
  v.setUint32(h.orig_len.offset, rec.origLen, true);
  v.setUint32(h.cap_len.offset, rec.data.length, true);
  v.setBigUint64(t.ts_boot_ns.offset, rec.tsBootNs, true);
  v.setUint32(t.ifindex.offset, rec.ifindex, true);
  v.setUint32(t.mark.offset, rec.mark, true);
  v.setUint32(t.flow_hash.offset, rec.flowHash, true);
  v.setUint16(t.l3_proto.offset, rec.l3Proto, false);
  v.setUint8(t.pkt_type.offset, rec.pktType);
  v.setUint8(t.trace_reason.offset, rec.traceReason ?? TRACE_REASON.UNKNOWN);
  v.setBigUint64(t.netns_cookie.offset, rec.netnsCookie, true);
  out.set(rec.data, TRACE_FIXED_SIZE);
  return out;
}
