/**
 * `struct pscope_drop` (record type 1): a packet the kernel dropped (skb:kfree_skb with
 * its drop reason) or Periscope's tc policy denied. Offsets are checked against the BTF
 * of drop.bpf.o by drop.test.ts.
 */
import { MAX_CAPTURE } from "@periscope/model";
import { DROP_VERSION, RECORD_TYPE_DROP } from "./constants.ts";
import { HDR_LAYOUT, HDR_SIZE, type StructLayout } from "./layout.ts";
import { newPacketRecord, type PacketRecordBase, readPacketFields } from "./packet-record.ts";
import { checkRecord, type RecordSpec } from "./record.ts";

/** Size of the fixed part of a drop record; `cap_len` packet bytes follow. */
export const DROP_FIXED_SIZE = 56;

/**
 * `struct pscope_drop`. `size` is the C struct size (fixed part plus the largest
 * capture); a sample is `DROP_FIXED_SIZE + cap_len` bytes. `flow_hash` sits at 32 like
 * the trace record's, `l3_proto` is network byte order, the rest host order.
 */
export const DROP_LAYOUT = {
  size: DROP_FIXED_SIZE + MAX_CAPTURE,
  fixedSize: DROP_FIXED_SIZE,
  fields: {
    hdr: { offset: 0, size: HDR_SIZE },
    ts_boot_ns: { offset: 16, size: 8 },
    ifindex: { offset: 24, size: 4 },
    reason: { offset: 28, size: 4 },
    flow_hash: { offset: 32, size: 4 },
    l3_proto: { offset: 36, size: 2 },
    obs_point: { offset: 38, size: 1 },
    _pad0: { offset: 39, size: 1 },
    netns_cookie: { offset: 40, size: 8 },
    location: { offset: 48, size: 8 },
    data: { offset: DROP_FIXED_SIZE, size: MAX_CAPTURE },
  },
} as const satisfies StructLayout;

/**
 * Offsets of drop.bpf.o's `.rodata` globals, written before load: `cfg` (struct
 * pscope_trace_config, capture length) and `netns_filter` (nonzero: report only
 * namespaces in the `watched_netns` map).
 */
export const DROP_RODATA = {
  cfg: { offset: 0, size: 8 },
  netns_filter: { offset: 8, size: 4 },
} as const;

/**
 * A decoded `struct pscope_drop` (type `RECORD_TYPE_DROP`). `origLen` counts from where
 * `data` starts; kernel drops carry `FLAG_L3` (data from the network header), and
 * `l3Proto` is 0 when the kernel had not set it.
 */
export interface DropRecord extends PacketRecordBase {
  /** Drop source (hdr.subtype): `DROP_SOURCE.KERNEL` or `DROP_SOURCE.POLICY`. */
  dropSource: number;
  /** Kernel: enum skb_drop_reason value (kernel-specific numbering); policy: Cilium drop reason. */
  reason: number;
  /** Policy drops: observation point (`OBS_*`); kernel drops: 0. */
  obsPoint: number;
  /** Kernel text address that dropped the packet; 0 for policy drops. */
  location: bigint;
}

/** What a drop record must look like; some messages keep the drop decoder's own wording. */
const DROP_SPEC: RecordSpec = {
  name: "drop",
  type: RECORD_TYPE_DROP,
  version: DROP_VERSION,
  fixedSize: DROP_FIXED_SIZE,
  wording: {
    headerTooShort: (len) => `drop record too short: ${len} bytes`,
    wrongType: (t) => `drop record expected type ${RECORD_TYPE_DROP}, got ${t}`,
    capLenBeyond: (c, a) => `drop record cap_len ${c} beyond sample: ${a} bytes follow`,
  },
};

/**
 * Decodes one drop record (a ring buffer sample of exactly `56 + cap_len` bytes).
 * `data` is a view into `bytes`, not a copy.
 * @throws MalformedRecordError naming the failed check: length, type, version, cap_len.
 */
export function decodeDropRecord(bytes: Uint8Array): DropRecord {
  const rec = checkRecord(bytes, DROP_SPEC);
  const d = DROP_LAYOUT.fields;
  // Filled in place: spreading the shared fields into a new object halves the decode rate.
  const out = readPacketFields(bytes, rec, DROP_LAYOUT) as DropRecord;
  out.dropSource = bytes[HDR_LAYOUT.fields.subtype.offset] ?? 0;
  out.reason = rec.view.getUint32(d.reason.offset, true);
  out.obsPoint = bytes[d.obs_point.offset] ?? 0;
  out.location = rec.view.getBigUint64(d.location.offset, true);
  return out;
}

/** A drop record to encode; `capLen` is taken from `data.length`. */
export type DropRecordInit = Omit<DropRecord, "capLen">;

/**
 * Encodes a drop record exactly as the kernel emits it (`56 + data.length` bytes),
 * for tests and benchmarks.
 * @throws EncodeRangeError when `data` is longer than `MAX_CAPTURE`.
 */
export function encodeDropRecord(rec: DropRecordInit): Uint8Array {
  const { bytes, view: v } = newPacketRecord(DROP_LAYOUT, rec, rec.dropSource);
  const d = DROP_LAYOUT.fields;
  v.setUint32(d.reason.offset, rec.reason, true);
  v.setUint8(d.obs_point.offset, rec.obsPoint);
  v.setBigUint64(d.location.offset, rec.location, true);
  return bytes;
}
