/**
 * `struct pscope_debug` (record type 2): a datapath debug event, 56 bytes, no
 * packet data. The layout is checked against the BTF of the header by debug.test.ts.
 */

import { DEBUG_VERSION, RECORD_TYPE_DEBUG } from "./constants.ts";
import { HDR_LAYOUT, HDR_SIZE, type StructLayout } from "./layout.ts";
import { checkRecord, newRecord, type RecordSpec } from "./record.ts";

/** Size of a debug record; the ring buffer sample is exactly this long. */
export const DEBUG_SIZE = 56;

/** `struct pscope_debug` (little-endian host order). */
export const DEBUG_LAYOUT = {
  size: DEBUG_SIZE,
  fields: {
    hdr: { offset: 0, size: HDR_SIZE },
    ts_boot_ns: { offset: 16, size: 8 },
    ifindex: { offset: 24, size: 4 },
    arg1: { offset: 28, size: 4 },
    flow_hash: { offset: 32, size: 4 },
    arg2: { offset: 36, size: 4 },
    arg3: { offset: 40, size: 4 },
    _pad0: { offset: 44, size: 4 },
    netns_cookie: { offset: 48, size: 8 },
  },
} as const satisfies StructLayout;

/** A decoded `struct pscope_debug`. */
export interface DebugRecord {
  /** Debug type (hdr.subtype), numbered like flow.DebugEventType. */
  subtype: number;
  version: number;
  flags: number;
  /** CPU that produced the record (hdr.source). */
  cpu: number;
  /** CLOCK_BOOTTIME at the event, nanoseconds. */
  tsBootNs: bigint;
  /** Device of the packet the event is about, 0 if none. */
  ifindex: number;
  /** Symmetric 5-tuple hash of the packet's flow, 0 if not IP. */
  flowHash: number;
  arg1: number;
  arg2: number;
  arg3: number;
  /** Network namespace cookie of the device, 0 if unknown. */
  netnsCookie: bigint;
}

/** What a debug record must look like: exactly {@link DEBUG_SIZE} bytes, no packet data. */
const DEBUG_SPEC: RecordSpec = {
  name: "debug",
  type: RECORD_TYPE_DEBUG,
  version: DEBUG_VERSION,
  fixedSize: DEBUG_SIZE,
  sized: true,
  wording: {
    fixedTooShort: (len) => `debug record too short: ${len} bytes, needs ${DEBUG_SIZE}`,
    trailing: (x) => `debug record has ${x} bytes after its ${DEBUG_SIZE}`,
  },
};

/**
 * Decodes one debug record (a sample of exactly {@link DEBUG_SIZE} bytes).
 * @throws MalformedRecordError naming the failed check: length, type, version.
 */
export function decodeDebugRecord(bytes: Uint8Array): DebugRecord {
  const { view: v, version } = checkRecord(bytes, DEBUG_SPEC);
  const h = HDR_LAYOUT.fields;
  const d = DEBUG_LAYOUT.fields;
  return {
    subtype: bytes[h.subtype.offset] ?? 0,
    version,
    flags: bytes[h.flags.offset] ?? 0,
    cpu: v.getUint32(h.source.offset, true),
    tsBootNs: v.getBigUint64(d.ts_boot_ns.offset, true),
    ifindex: v.getUint32(d.ifindex.offset, true),
    flowHash: v.getUint32(d.flow_hash.offset, true),
    arg1: v.getUint32(d.arg1.offset, true),
    arg2: v.getUint32(d.arg2.offset, true),
    arg3: v.getUint32(d.arg3.offset, true),
    netnsCookie: v.getBigUint64(d.netns_cookie.offset, true),
  };
}

/** A debug record to encode (tests, examples); version defaults to {@link DEBUG_VERSION}. */
export type DebugRecordInit = Omit<DebugRecord, "version" | "flags"> &
  Partial<Pick<DebugRecord, "version" | "flags">>;

/** Encodes a debug record exactly as the kernel emits it ({@link DEBUG_SIZE} bytes). */
export function encodeDebugRecord(rec: DebugRecordInit): Uint8Array {
  const { bytes, view: v } = newRecord(DEBUG_SIZE, {
    ...rec,
    type: RECORD_TYPE_DEBUG,
    version: rec.version ?? DEBUG_VERSION,
    flags: rec.flags ?? 0,
    origLen: 0,
  });
  const d = DEBUG_LAYOUT.fields;
  v.setBigUint64(d.ts_boot_ns.offset, rec.tsBootNs, true);
  v.setUint32(d.ifindex.offset, rec.ifindex, true);
  v.setUint32(d.flow_hash.offset, rec.flowHash, true);
  v.setUint32(d.arg1.offset, rec.arg1, true);
  v.setUint32(d.arg2.offset, rec.arg2, true);
  v.setUint32(d.arg3.offset, rec.arg3, true);
  v.setBigUint64(d.netns_cookie.offset, rec.netnsCookie, true);
  return bytes;
}
