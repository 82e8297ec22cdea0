import { RECORD_TYPE_DROP, RECORD_TYPE_POLICY_VERDICT } from "./constants.ts";
import { MalformedRecordError } from "./decode.ts";
import { DROP_FIXED_SIZE } from "./drop.ts";
import { HDR_LAYOUT, RECORD_TYPE_TRACE, TRACE_FIXED_SIZE, TRACE_LAYOUT } from "./layout.ts";
import { POLICY_VERDICT_FIXED_SIZE } from "./policy-verdict.ts";
import { RECORD_TYPE_SOCK_OWNER, SOCK_OWNER_SIZE } from "./proc.ts";

/** Record types carrying `flow_hash` at the trace record's offset, with their fixed size. */
const HASHED_TYPES = new Map<number, number>([
  [RECORD_TYPE_TRACE, TRACE_FIXED_SIZE],
  [RECORD_TYPE_DROP, DROP_FIXED_SIZE],
  [RECORD_TYPE_POLICY_VERDICT, POLICY_VERDICT_FIXED_SIZE],
  [RECORD_TYPE_SOCK_OWNER, SOCK_OWNER_SIZE],
]);

/**
 * Reads only the flow hash of a trace, drop, policy verdict or socket-owner record (all keep it
 * at byte 32), for
 * partitioning without a full decode, so a flow's drops land with its traces.
 * @throws MalformedRecordError for other record types or records too short.
 */
export function readFlowHash(bytes: Uint8Array): number {
  if (bytes.byteLength < HDR_LAYOUT.size) {
    throw new MalformedRecordError("too_short", `record too short: ${bytes.byteLength} bytes`);
  }
  const type = bytes[HDR_LAYOUT.fields.type.offset] ?? 0;
  const fixed = HASHED_TYPES.get(type);
  if (fixed === undefined) {
    throw new MalformedRecordError("wrong_type", `record type ${type} carries no flow hash`);
  }
  if (bytes.byteLength < fixed) {
    throw new MalformedRecordError(
      "too_short",
      `record type ${type} too short: ${bytes.byteLength} bytes, fixed part needs ${fixed}`,
    );
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return v.getUint32(TRACE_LAYOUT.fields.flow_hash.offset, true);
}
