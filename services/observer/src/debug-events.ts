import { fromBinary } from "@bufbuild/protobuf";
import { type GetDebugEventsResponse, GetDebugEventsResponseSchema } from "@periscope/proto";

/**
 * Decodes the encoded debug events of a FlowBatch (`debug_events`, as
 * readCheckedFlowBatch collects them) and hands each to `add`. One that does not
 * decode is left out and counted, never thrown: the caller stores it as lost.
 */
export function decodeDebugEvents(
  encoded: readonly Uint8Array[],
  add: (ev: GetDebugEventsResponse) => void,
): { rejected: number; reason: string | undefined } {
  let rejected = 0;
  let reason: string | undefined;
  encoded.forEach((bytes, i) => {
    let ev: GetDebugEventsResponse;
    try {
      ev = fromBinary(GetDebugEventsResponseSchema, bytes);
    } catch (err) {
      rejected++;
      reason ??= `debug event ${i}: ${err instanceof Error ? err.message : String(err)}`;
      return;
    }
    add(ev);
  });
  return { rejected, reason };
}
