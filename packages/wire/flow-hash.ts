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

/** murmur3 finalizer, as fmix32 in bpf/include/flowhash.h. */
function fmix32(h: number): number {
  let x = h >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

function mixWord(h: number, w: number): number {
  return (Math.imul(fmix32((h ^ w) >>> 0), 31) + w) >>> 0;
}

function endpointHash(addr: Uint8Array, port: number): number {
  const v = new DataView(addr.buffer, addr.byteOffset, addr.byteLength);
  let h = 0x9e3779b9;
  for (let i = 0; i + 4 <= addr.byteLength && i < 16; i += 4) h = mixWord(h, v.getUint32(i, true));
  return mixWord(h, port);
}

/**
 * The symmetric flow hash the kernel programs compute (bpf/include/flowhash.h): equal
 * for both directions. Addresses are 4 (IPv4) or 16 (IPv6) bytes in network order,
 * ports in host order; never 0 (0 means "not IP").
 */
export function computeFlowHash(
  saddr: Uint8Array,
  sport: number,
  daddr: Uint8Array,
  dport: number,
  proto: number,
): number {
  const a = endpointHash(saddr, sport);
  const b = endpointHash(daddr, dport);
  const lo = a < b ? a : b;
  const hi = a < b ? b : a;
  const h = fmix32(mixWord(mixWord((0x85ebca6b ^ proto) >>> 0, lo), hi));
  return h === 0 ? 1 : h;
}
