/**
 * Hand-built packets for running the trace program with BPF_PROG_TEST_RUN
 * (tests and benchmarks; not exported by index.ts). Checksums are left zero:
 * the program does not look at them.
 */
import { ipBytes } from "./trace-settings.ts";

/** TCP flag bits. */
export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

/** What goes into one packet. */
export interface PacketSpec {
  src: string;
  dst: string;
  /** IPPROTO_* (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP). */
  proto: number;
  sport?: number;
  dport?: number;
  /** TCP flags byte. */
  flags?: number;
  /** Payload bytes after the transport header. */
  payload?: number;
  /** ICMP type/code and echo identifier. */
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  /** ICMP errors: the quoted packet (IP header + first 8 bytes of it are used). */
  quote?: Uint8Array;
  /** VLAN ids to insert, outermost first (802.1ad for the outer of two). */
  vlans?: number[];
  /** IPv4 fragment: flags+offset word (MF 0x2000, offset in 8-byte units). */
  fragWord?: number;
  /** Leave out the Ethernet header (L3 device). */
  noEthernet?: boolean;
}

function l4Bytes(p: PacketSpec): Uint8Array {
  const payload = p.payload ?? 0;
  const v6 = p.src.includes(":");
  if (p.proto === 6) {
    const h = new Uint8Array(20 + payload);
    const v = new DataView(h.buffer);
    v.setUint16(0, p.sport ?? 0);
    v.setUint16(2, p.dport ?? 0);
    h[12] = 5 << 4;
    h[13] = p.flags ?? 0;
    v.setUint16(14, 65535);
    return h;
  }
  if (p.proto === 17 || p.proto === 132) {
    const h = new Uint8Array((p.proto === 17 ? 8 : 12) + payload);
    const v = new DataView(h.buffer);
    v.setUint16(0, p.sport ?? 0);
    v.setUint16(2, p.dport ?? 0);
    if (p.proto === 17) v.setUint16(4, h.length);
    return h;
  }
  if (p.proto === 1 || p.proto === 58) {
    const quote = p.quote ?? new Uint8Array(0);
    const h = new Uint8Array(8 + quote.length + payload);
    h[0] = p.icmpType ?? (v6 ? 128 : 8);
    h[1] = p.icmpCode ?? 0;
    new DataView(h.buffer).setUint16(4, p.icmpId ?? 0);
    h.set(quote, 8);
    return h;
  }
  return new Uint8Array(payload);
}

/** The IP packet (no L2 header) for `p`. */
export function ipPacket(p: PacketSpec): Uint8Array {
  const l4 = l4Bytes(p);
  const src = ipBytes(p.src);
  const dst = ipBytes(p.dst);
  if (src.length === 4) {
    const out = new Uint8Array(20 + l4.length);
    const v = new DataView(out.buffer);
    out[0] = 0x45;
    v.setUint16(2, out.length);
    v.setUint16(4, 0x1234);
    v.setUint16(6, p.fragWord ?? 0x4000);
    out[8] = 64;
    out[9] = p.proto;
    out.set(src, 12);
    out.set(dst, 16);
    out.set(l4, 20);
    return out;
  }
  const out = new Uint8Array(40 + l4.length);
  const v = new DataView(out.buffer);
  out[0] = 0x60;
  v.setUint16(4, l4.length);
  out[6] = p.proto;
  out[7] = 64;
  out.set(src, 8);
  out.set(dst, 24);
  out.set(l4, 40);
  return out;
}

/** An Ethernet frame (with optional VLAN tags) carrying {@link ipPacket}(p). */
export function frame(p: PacketSpec): Uint8Array {
  const ip = ipPacket(p);
  if (p.noEthernet) return ip;
  const tags = p.vlans ?? [];
  const out = new Uint8Array(14 + tags.length * 4 + ip.length);
  const v = new DataView(out.buffer);
  out.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
  let off = 12;
  tags.forEach((id, i) => {
    v.setUint16(off, i === 0 && tags.length > 1 ? 0x88a8 : 0x8100);
    v.setUint16(off + 2, id);
    off += 4;
  });
  v.setUint16(off, p.src.includes(":") ? 0x86dd : 0x0800);
  out.set(ip, off + 2);
  return out;
}
