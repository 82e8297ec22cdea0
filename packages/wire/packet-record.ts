/**
 * The part shared by the records that carry packet bytes (trace, drop, policy
 * verdict): the common header plus timestamp, device, flow hash, EtherType and
 * netns cookie, each record placing them by its own layout.
 */
import { HDR_LAYOUT } from "./header.ts";
import type { FieldLayout } from "./layout.ts";
import { type CheckedRecord, newRecord } from "./record.ts";

/** The fields every decoded packet record has. */
export interface PacketRecordBase {
  /** Record type (hdr.type). */
  type: number;
  /** Record format version. */
  version: number;
  /** `FLAG_*` bits; `FLAG_L3` when `data` starts at the network header. */
  flags: number;
  /** CPU that produced the record (hdr.source). */
  cpu: number;
  /** Length of the packet where it was seen, bytes. */
  origLen: number;
  /** Captured packet bytes in `data`. */
  capLen: number;
  /** CLOCK_BOOTTIME when the record was made, nanoseconds. */
  tsBootNs: bigint;
  /** Interface index of the packet's device (in its own netns), 0 when none. */
  ifindex: number;
  /** Symmetric 5-tuple hash, equal for both directions of a flow; 0 when not IP. */
  flowHash: number;
  /** EtherType of the packet (skb->protocol), e.g. 0x0800; host value. */
  l3Proto: number;
  /** Network namespace cookie of the device, 0 if unknown. */
  netnsCookie: bigint;
  /**
   * First `capLen` bytes of the packet (a view into the record), from the
   * Ethernet header, or from the network header when `flags` has `FLAG_L3`.
   */
  data: Uint8Array;
}

/** Where a packet record keeps the shared fields, and where its packet bytes start. */
export interface PacketLayout {
  readonly fixedSize: number;
  readonly fields: Readonly<
    Record<"ts_boot_ns" | "ifindex" | "flow_hash" | "l3_proto" | "netns_cookie", FieldLayout>
  >;
}

/** Reads the shared fields of a record that passed `checkRecord`. */
export function readPacketFields(
  bytes: Uint8Array,
  rec: CheckedRecord,
  layout: PacketLayout,
): PacketRecordBase {
  const v = rec.view;
  const h = HDR_LAYOUT.fields;
  const f = layout.fields;
  return {
    type: rec.type,
    version: rec.version,
    flags: bytes[h.flags.offset] ?? 0,
    cpu: v.getUint32(h.source.offset, true),
    origLen: v.getUint32(h.orig_len.offset, true),
    capLen: rec.capLen,
    tsBootNs: v.getBigUint64(f.ts_boot_ns.offset, true),
    ifindex: v.getUint32(f.ifindex.offset, true),
    flowHash: v.getUint32(f.flow_hash.offset, true),
    l3Proto: v.getUint16(f.l3_proto.offset, false),
    netnsCookie: v.getBigUint64(f.netns_cookie.offset, true),
    data: bytes.subarray(layout.fixedSize, layout.fixedSize + rec.capLen),
  };
}

/** A packet record to encode: the shared fields without `capLen` (the data length). */
export type PacketRecordInit = Omit<PacketRecordBase, "capLen">;

/**
 * A packet record as the kernel emits it with the header, the shared fields
 * and the packet bytes written; `subtype` goes to hdr.subtype.
 * @throws EncodeRangeError when `data` is longer than `MAX_CAPTURE`.
 */
export function newPacketRecord(
  layout: PacketLayout,
  rec: PacketRecordInit,
  subtype: number,
): { bytes: Uint8Array; view: DataView } {
  const out = newRecord(layout.fixedSize, { ...rec, subtype }, rec.data);
  const v = out.view;
  const f = layout.fields;
  v.setBigUint64(f.ts_boot_ns.offset, rec.tsBootNs, true);
  v.setUint32(f.ifindex.offset, rec.ifindex, true);
  v.setUint32(f.flow_hash.offset, rec.flowHash, true);
  v.setUint16(f.l3_proto.offset, rec.l3Proto, false);
  v.setBigUint64(f.netns_cookie.offset, rec.netnsCookie, true);
  return out;
}
