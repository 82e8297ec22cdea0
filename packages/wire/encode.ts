import { TRACE_REASON } from "./constants.ts";
import type { TraceRecord } from "./decode.ts";
import { TRACE_LAYOUT } from "./layout.ts";
import { newPacketRecord } from "./packet-record.ts";

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
  const { bytes, view: v } = newPacketRecord(TRACE_LAYOUT, rec, rec.obsPoint);
  const t = TRACE_LAYOUT.fields;
  v.setUint32(t.mark.offset, rec.mark, true);
  v.setUint8(t.pkt_type.offset, rec.pktType);
  v.setUint8(t.trace_reason.offset, rec.traceReason ?? TRACE_REASON.UNKNOWN);
  return bytes;
}
