import { fromBinary } from "@bufbuild/protobuf";
import { type GetDebugEventsResponse, GetDebugEventsResponseSchema } from "@periscope/proto";
import { WireFormatError, WireReader } from "./wire.ts";

/** FlowBatch.debug_events (field 3), the kernel debug events a frame held. */
const DEBUG_EVENTS_FIELD = 3;

/**
 * Decodes only the debug events of an encoded FlowBatch, skipping everything else
 * unread; most batches have none and cost one walk over the top-level tags.
 * @throws WireFormatError when the framing or a debug event is broken.
 */
export function readDebugEvents(payload: Uint8Array): GetDebugEventsResponse[] {
  const out: GetDebugEventsResponse[] = [];
  const r = new WireReader(payload, 0, payload.length);
  while (r.pos < payload.length) {
    const tag = r.uint32();
    if (tag >>> 3 === DEBUG_EVENTS_FIELD && (tag & 7) === 2) {
      const end = r.lenEnd();
      const bytes = payload.subarray(r.pos, end);
      r.pos = end;
      try {
        out.push(fromBinary(GetDebugEventsResponseSchema, bytes));
      } catch (err) {
        throw new WireFormatError(`undecodable FlowBatch.debug_events: ${String(err)}`);
      }
    } else {
      r.skip(tag & 7);
    }
  }
  return out;
}
