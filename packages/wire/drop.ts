/**
 * `struct pscope_drop` (record type 1): a packet the kernel dropped (skb:kfree_skb with
 * its drop reason) or Periscope's tc policy denied. Offsets are checked against the BTF
 * of drop.bpf.o by drop.test.ts.
 */
import { MAX_CAPTURE } from "@periscope/model";
import { DROP_VERSION, RECORD_TYPE_DROP } from "./constants.ts";
import { HDR_LAYOUT, HDR_SIZE, type StructLayout } from "./layout.ts";
import { checkRecord, newRecord, type RecordSpec } from "./record.ts";

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

/** A decoded `struct pscope_drop`. */
export interface DropRecord {
  /** Record type, always `RECORD_TYPE_DROP`. */
  type: number;
  /** Drop source (hdr.subtype): `DROP_SOURCE.KERNEL` or `DROP_SOURCE.POLICY`. */
  dropSource: number;
  version: number;
  /** `FLAG_*` bits; kernel drops carry `FLAG_L3` (data starts at the network header). */
  flags: number;
  /** CPU that produced the record. */
  cpu: number;
  /** Packet length at the drop from where `data` starts, bytes. */
  origLen: number;
  capLen: number;
  /** CLOCK_BOOTTIME at the drop, nanoseconds. */
  tsBootNs: bigint;
  /** Device of the packet (its own netns), 0 when none. */
  ifindex: number;
  /** Kernel: enum skb_drop_reason value (kernel-specific numbering); policy: Cilium drop reason. */
  reason: number;
  /** Symmetric 5-tuple hash, the same as the flow's trace records; 0 when not IP. */
  flowHash: number;
  /** EtherType (skb->protocol), host value; 0 when the kernel had not set it. */
  l3Proto: number;
  /** Policy drops: observation point (`OBS_*`); kernel drops: 0. */
  obsPoint: number;
  /** Network namespace cookie of the device (or socket), 0 if unknown. */
  netnsCookie: bigint;
  /** Kernel text address that dropped the packet; 0 for policy drops. */
  location: bigint;
  /** First `capLen` bytes of the packet (from the network header when `FLAG_L3`). */
  data: Uint8Array;
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
  const { view: v, type, version, capLen } = checkRecord(bytes, DROP_SPEC);
  const h = HDR_LAYOUT.fields;
  const d = DROP_LAYOUT.fields;
  return {
    type,
    dropSource: bytes[h.subtype.offset] ?? 0,
    version,
    flags: bytes[h.flags.offset] ?? 0,
    cpu: v.getUint32(h.source.offset, true),
    origLen: v.getUint32(h.orig_len.offset, true),
    capLen,
    tsBootNs: v.getBigUint64(d.ts_boot_ns.offset, true),
    ifindex: v.getUint32(d.ifindex.offset, true),
    reason: v.getUint32(d.reason.offset, true),
    flowHash: v.getUint32(d.flow_hash.offset, true),
    l3Proto: v.getUint16(d.l3_proto.offset, false),
    obsPoint: bytes[d.obs_point.offset] ?? 0,
    netnsCookie: v.getBigUint64(d.netns_cookie.offset, true),
    location: v.getBigUint64(d.location.offset, true),
    data: bytes.subarray(DROP_FIXED_SIZE, DROP_FIXED_SIZE + capLen),
  };
}

/** A drop record to encode; `capLen` is taken from `data.length`. */
export type DropRecordInit = Omit<DropRecord, "capLen">;

/**
 * Encodes a drop record exactly as the kernel emits it (`56 + data.length` bytes),
 * for tests and benchmarks.
 * @throws EncodeRangeError when `data` is longer than `MAX_CAPTURE`.
 */
export function encodeDropRecord(rec: DropRecordInit): Uint8Array {
  const { bytes, view: v } = newRecord(
    DROP_FIXED_SIZE,
    { ...rec, subtype: rec.dropSource },
    rec.data,
  );
  const d = DROP_LAYOUT.fields;
  v.setBigUint64(d.ts_boot_ns.offset, rec.tsBootNs, true);
  v.setUint32(d.ifindex.offset, rec.ifindex, true);
  v.setUint32(d.reason.offset, rec.reason, true);
  v.setUint32(d.flow_hash.offset, rec.flowHash, true);
  v.setUint16(d.l3_proto.offset, rec.l3Proto, false);
  v.setUint8(d.obs_point.offset, rec.obsPoint);
  v.setBigUint64(d.netns_cookie.offset, rec.netnsCookie, true);
  v.setBigUint64(d.location.offset, rec.location, true);
  return bytes;
}
