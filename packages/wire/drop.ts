/**
 * `struct pscope_drop` (record type 1): a packet the kernel dropped (skb:kfree_skb with
 * its drop reason) or Periscope's tc policy denied. Offsets are checked against the BTF
 * of drop.bpf.o by drop.test.ts.
 */
import { MAX_CAPTURE } from "@periscope/model";
import { DROP_VERSION, RECORD_TYPE_DROP } from "./constants.ts";
import { MalformedRecordError } from "./decode.ts";
import { EncodeRangeError } from "./encode.ts";
import { HDR_LAYOUT, HDR_SIZE, type StructLayout } from "./layout.ts";

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

function fail(reason: ConstructorParameters<typeof MalformedRecordError>[0], msg: string): never {
  throw new MalformedRecordError(reason, `drop record ${msg}`);
}

/**
 * Decodes one drop record (a ring buffer sample of exactly `56 + cap_len` bytes).
 * `data` is a view into `bytes`, not a copy.
 * @throws MalformedRecordError naming the failed check: length, type, version, cap_len.
 */
export function decodeDropRecord(bytes: Uint8Array): DropRecord {
  const h = HDR_LAYOUT.fields;
  if (bytes.byteLength < HDR_SIZE) fail("too_short", `too short: ${bytes.byteLength} bytes`);
  const type = bytes[h.type.offset] ?? 0;
  if (type !== RECORD_TYPE_DROP) {
    fail("wrong_type", `expected type ${RECORD_TYPE_DROP}, got ${type}`);
  }
  const version = bytes[h.version.offset] ?? 0;
  if (version !== DROP_VERSION) {
    fail("bad_version", `version ${version} unsupported, expected ${DROP_VERSION}`);
  }
  if (bytes.byteLength < DROP_FIXED_SIZE) {
    fail("too_short", `too short: ${bytes.byteLength} bytes, fixed part needs ${DROP_FIXED_SIZE}`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const capLen = v.getUint32(h.cap_len.offset, true);
  if (capLen > MAX_CAPTURE) {
    fail("cap_len_too_large", `cap_len ${capLen} exceeds maximum capture ${MAX_CAPTURE}`);
  }
  const available = bytes.byteLength - DROP_FIXED_SIZE;
  if (capLen > available) {
    fail("cap_len_beyond_sample", `cap_len ${capLen} beyond sample: ${available} bytes follow`);
  }
  if (capLen < available) {
    fail("trailing_bytes", `has ${available - capLen} bytes after cap_len ${capLen}`);
  }
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
  if (rec.data.length > MAX_CAPTURE) {
    throw new EncodeRangeError(`data is ${rec.data.length} bytes, maximum capture ${MAX_CAPTURE}`);
  }
  const out = new Uint8Array(DROP_FIXED_SIZE + rec.data.length);
  const v = new DataView(out.buffer);
  const h = HDR_LAYOUT.fields;
  const d = DROP_LAYOUT.fields;
  v.setUint8(h.type.offset, rec.type);
  v.setUint8(h.subtype.offset, rec.dropSource);
  v.setUint8(h.version.offset, rec.version);
  v.setUint8(h.flags.offset, rec.flags);
  v.setUint32(h.source.offset, rec.cpu, true);
  v.setUint32(h.orig_len.offset, rec.origLen, true);
  v.setUint32(h.cap_len.offset, rec.data.length, true);
  v.setBigUint64(d.ts_boot_ns.offset, rec.tsBootNs, true);
  v.setUint32(d.ifindex.offset, rec.ifindex, true);
  v.setUint32(d.reason.offset, rec.reason, true);
  v.setUint32(d.flow_hash.offset, rec.flowHash, true);
  v.setUint16(d.l3_proto.offset, rec.l3Proto, false);
  v.setUint8(d.obs_point.offset, rec.obsPoint);
  v.setBigUint64(d.netns_cookie.offset, rec.netnsCookie, true);
  v.setBigUint64(d.location.offset, rec.location, true);
  out.set(rec.data, DROP_FIXED_SIZE);
  return out;
}
