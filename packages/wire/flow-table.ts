/**
 * Layouts of the flow table structs of bpf/include/periscope.h (key and
 * per-CPU value of `flows_a`/`flows_b`, the `flow_spill` ring record) and
 * their decoders. Checked against the BTF of trace.bpf.o by flow-table.test.ts.
 */
import type { StructLayout } from "./layout.ts";

/** `struct pscope_flow_key`: one direction of a flow at one hook of one device. */
export const FLOW_KEY_LAYOUT = {
  size: 56,
  fields: {
    netns_cookie: { offset: 0, size: 8 },
    ifindex: { offset: 8, size: 4 },
    family: { offset: 12, size: 1 },
    proto: { offset: 13, size: 1 },
    direction: { offset: 14, size: 1 },
    icmp_type: { offset: 15, size: 1 },
    saddr: { offset: 16, size: 16 },
    daddr: { offset: 32, size: 16 },
    sport: { offset: 48, size: 2 },
    dport: { offset: 50, size: 2 },
    icmp_code: { offset: 52, size: 1 },
    _pad0: { offset: 53, size: 3 },
  },
} as const satisfies StructLayout;

/** `struct pscope_flow_value`: one CPU's counters of a flow. */
export const FLOW_VALUE_LAYOUT = {
  size: 80,
  fields: {
    first_seen_ns: { offset: 0, size: 8 },
    last_seen_ns: { offset: 8, size: 8 },
    packets: { offset: 16, size: 8 },
    bytes: { offset: 24, size: 8 },
    rtt_ns: { offset: 32, size: 8 },
    src_mac: { offset: 40, size: 6 },
    dst_mac: { offset: 46, size: 6 },
    tcp_flags: { offset: 52, size: 1 },
    dscp: { offset: 53, size: 1 },
    _pad0: { offset: 54, size: 2 },
    drop_packets: { offset: 56, size: 8 },
    drop_bytes: { offset: 64, size: 8 },
    drop_reason: { offset: 72, size: 4 },
    _pad1: { offset: 76, size: 4 },
  },
} as const satisfies StructLayout;

/** `struct pscope_flow_spill`: one packet that found the table full. */
export const FLOW_SPILL_LAYOUT = {
  size: 136,
  fields: {
    key: { offset: 0, size: 56 },
    value: { offset: 56, size: 80 },
  },
} as const satisfies StructLayout;

/** A decoded `struct pscope_flow_key`. Addresses are 4 (IPv4) or 16 bytes, copies. */
export interface FlowKey {
  netnsCookie: bigint;
  ifindex: number;
  family: 4 | 6;
  proto: number;
  /** Hook: 0 tc ingress, 1 tc egress. */
  direction: 0 | 1;
  icmpType: number;
  icmpCode: number;
  srcAddr: Uint8Array;
  dstAddr: Uint8Array;
  srcPort: number;
  dstPort: number;
}

/** A decoded `struct pscope_flow_value` (one CPU's, or several CPUs' merged). */
export interface FlowCounters {
  /** bpf_ktime_get_coarse_ns() of the first and last packet. */
  firstSeenNs: bigint;
  lastSeenNs: bigint;
  packets: bigint;
  bytes: bigint;
  rttNs: bigint;
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  tcpFlags: number;
  dscp: number;
  /** Packets and bytes of the flow the kernel dropped, and the last skb_drop_reason. */
  dropPackets: bigint;
  dropBytes: bigint;
  dropReason: number;
}

/** Thrown for a key or value that is not a flow table struct. */
export class FlowTableDecodeError extends Error {
  override readonly name = "FlowTableDecodeError";
}

/** Decodes the flow key at `buf[off..off+56)`. */
export function decodeFlowKey(buf: Uint8Array, off = 0): FlowKey {
  if (buf.length < off + FLOW_KEY_LAYOUT.size) {
    throw new FlowTableDecodeError(
      `flow key needs ${FLOW_KEY_LAYOUT.size} bytes, got ${buf.length - off}`,
    );
  }
  const v = new DataView(buf.buffer, buf.byteOffset + off, FLOW_KEY_LAYOUT.size);
  const f = FLOW_KEY_LAYOUT.fields;
  const family = v.getUint8(f.family.offset);
  if (family !== 4 && family !== 6) {
    throw new FlowTableDecodeError(`flow key family must be 4 or 6, got ${family}`);
  }
  const alen = family === 4 ? 4 : 16;
  const base = buf.byteOffset + off;
  return {
    netnsCookie: v.getBigUint64(f.netns_cookie.offset, true),
    ifindex: v.getUint32(f.ifindex.offset, true),
    family,
    proto: v.getUint8(f.proto.offset),
    direction: (v.getUint8(f.direction.offset) & 1) as 0 | 1,
    icmpType: v.getUint8(f.icmp_type.offset),
    icmpCode: v.getUint8(f.icmp_code.offset),
    srcAddr: new Uint8Array(buf.buffer.slice(base + f.saddr.offset, base + f.saddr.offset + alen)),
    dstAddr: new Uint8Array(buf.buffer.slice(base + f.daddr.offset, base + f.daddr.offset + alen)),
    srcPort: v.getUint16(f.sport.offset, true),
    dstPort: v.getUint16(f.dport.offset, true),
  };
}

/** Decodes one CPU's flow value at `buf[off..off+80)`. */
export function decodeFlowValue(buf: Uint8Array, off = 0): FlowCounters {
  if (buf.length < off + FLOW_VALUE_LAYOUT.size) {
    throw new FlowTableDecodeError(
      `flow value needs ${FLOW_VALUE_LAYOUT.size} bytes, got ${buf.length - off}`,
    );
  }
  const v = new DataView(buf.buffer, buf.byteOffset + off, FLOW_VALUE_LAYOUT.size);
  const f = FLOW_VALUE_LAYOUT.fields;
  const base = buf.byteOffset + off;
  return {
    firstSeenNs: v.getBigUint64(f.first_seen_ns.offset, true),
    lastSeenNs: v.getBigUint64(f.last_seen_ns.offset, true),
    packets: v.getBigUint64(f.packets.offset, true),
    bytes: v.getBigUint64(f.bytes.offset, true),
    rttNs: v.getBigUint64(f.rtt_ns.offset, true),
    srcMac: new Uint8Array(buf.buffer.slice(base + f.src_mac.offset, base + f.src_mac.offset + 6)),
    dstMac: new Uint8Array(buf.buffer.slice(base + f.dst_mac.offset, base + f.dst_mac.offset + 6)),
    tcpFlags: v.getUint8(f.tcp_flags.offset),
    dscp: v.getUint8(f.dscp.offset),
    dropPackets: v.getBigUint64(f.drop_packets.offset, true),
    dropBytes: v.getBigUint64(f.drop_bytes.offset, true),
    dropReason: v.getUint32(f.drop_reason.offset, true),
  };
}

/**
 * Adds `b` into `a` (two CPUs' or two generations' counters of one flow): sums,
 * earliest first and latest last seen, union of flags; MACs, DSCP and RTT kept
 * from `a` unless it has none; drops summed, the drop reason of `b` when it has drops.
 */
export function mergeFlowCounters(a: FlowCounters, b: FlowCounters): void {
  if (b.dropPackets > 0n) {
    a.dropPackets += b.dropPackets;
    a.dropBytes += b.dropBytes;
    a.dropReason = b.dropReason;
  }
  if (b.packets === 0n) return;
  if (a.packets === 0n) {
    const drops = { dropPackets: a.dropPackets, dropBytes: a.dropBytes, dropReason: a.dropReason };
    Object.assign(a, { ...b }, drops);
    return;
  }
  a.packets += b.packets;
  a.bytes += b.bytes;
  if (b.firstSeenNs < a.firstSeenNs) a.firstSeenNs = b.firstSeenNs;
  if (b.lastSeenNs > a.lastSeenNs) a.lastSeenNs = b.lastSeenNs;
  a.tcpFlags |= b.tcpFlags;
  if (a.rttNs === 0n) a.rttNs = b.rttNs;
}
