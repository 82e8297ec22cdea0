import { decodeArp } from "./arp.ts";
import { PacketDecodeError } from "./errors.ts";
import { decodeEthernet, ETHERTYPE } from "./ethernet.ts";
import { decodeIcmpV4 } from "./icmpv4.ts";
import { decodeIcmpV6 } from "./icmpv6.ts";
import { decodeIPv4 } from "./ipv4.ts";
import { decodeIPv6 } from "./ipv6.ts";
import { decodeSctp } from "./sctp.ts";
import { decodeTcp } from "./tcp.ts";
import type { DecodedPacket, IpHeader, L4Header, Span, TransportPayload } from "./types.ts";
import { decodeUdp } from "./udp.ts";

/** IP protocol numbers the decoder knows. */
export const IPPROTO = {
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  ICMPV6: 58,
  SCTP: 132,
} as const;

/** Where a capture starts: an Ethernet header (tc on most devices) or an IP header. */
export type LinkType = "ethernet" | "ip";

/**
 * Decode a captured packet layer by layer: Ethernet (+VLAN), ARP / IPv4 /
 * IPv6, then TCP / UDP / SCTP / ICMPv4 / ICMPv6. Decoding stops at the last
 * complete layer when the capture is truncated (`truncated: true`); only the
 * first fragment of a fragmented packet carries L4. With a `sink`, the position of a
 * TCP or UDP payload is left in `sink.payload`. Throws PacketDecodeError
 * for an empty capture or a malformed header.
 */
export function decodePacket(
  bytes: Uint8Array,
  linkType: LinkType = "ethernet",
  sink?: PayloadSink,
): DecodedPacket {
  if (bytes.length === 0) throw new PacketDecodeError("packet", "no bytes captured");
  const whole: Span = { bytes, offset: 0, end: bytes.length };
  if (linkType === "ip") return decodeNetwork(ipEtherType(bytes), whole, {}, sink);

  const eth = decodeEthernet(whole);
  const out: DecodedPacket = { ethernet: eth.header, truncated: eth.truncated };
  if (eth.truncated) return out;
  return decodeNetwork(eth.header.etherType, eth.payload, out, sink);
}

/** Receives where the TCP or UDP payload sits, when decodePacket is given one. */
export interface PayloadSink {
  payload?: TransportPayload | undefined;
}

function ipEtherType(bytes: Uint8Array): number {
  const version = (bytes[0] ?? 0) >> 4;
  if (version === 4) return ETHERTYPE.IPV4;
  if (version === 6) return ETHERTYPE.IPV6;
  throw new PacketDecodeError("ip", `version ${version}, expected 4 or 6`);
}

function decodeNetwork(
  etherType: number,
  span: Span,
  partial: Omit<DecodedPacket, "truncated">,
  sink?: PayloadSink,
): DecodedPacket {
  const out: DecodedPacket = { ...partial, truncated: false };
  if (etherType === ETHERTYPE.ARP) {
    const arp = decodeArp(span);
    if (arp) out.arp = arp;
    else out.truncated = span.end - span.offset < 28;
    return out;
  }
  const ip =
    etherType === ETHERTYPE.IPV4
      ? decodeIPv4(span)
      : etherType === ETHERTYPE.IPV6
        ? decodeIPv6(span)
        : null;
  if (ip === null) return out;
  if (ip === undefined) {
    out.truncated = true;
    return out;
  }
  out.ip = ip.header;
  if (ip.truncated) {
    out.truncated = true;
    return out;
  }
  if (ip.header.fragmentOffset !== 0) return out;
  const l4 = decodeTransport(ip.header, ip.payload);
  if (l4 === null) return out;
  if (l4 === undefined) out.truncated = true;
  else {
    out.l4 = l4;
    if (sink) sink.payload = transportPayload(l4, ip.payload);
  }
  return out;
}

/** L4 header, undefined when truncated, null for a protocol the decoder skips. */
function decodeTransport(ip: IpHeader, span: Span): L4Header | undefined | null {
  switch (ip.protocol) {
    case IPPROTO.TCP:
      return decodeTcp(span);
    case IPPROTO.UDP:
      return decodeUdp(span);
    case IPPROTO.SCTP:
      return decodeSctp(span);
    case IPPROTO.ICMP:
      return ip.version === 4 ? decodeIcmpV4(span) : null;
    case IPPROTO.ICMPV6:
      return ip.version === 6 ? decodeIcmpV6(span) : null;
    default:
      return null;
  }
}

/** Payload position of a TCP or UDP packet; undefined for other protocols or a short capture. */
function transportPayload(l4: L4Header, span: Span): TransportPayload | undefined {
  const { bytes, offset, end } = span;
  if (l4.kind === "udp") {
    return offset + 8 <= end ? { offset: offset + 8, end } : undefined;
  }
  if (l4.kind !== "tcp") return undefined;
  const start = offset + ((bytes[offset + 12] ?? 0) >> 4) * 4;
  if (start > end) return undefined;
  const seq =
    (((bytes[offset + 4] ?? 0) << 24) |
      ((bytes[offset + 5] ?? 0) << 16) |
      ((bytes[offset + 6] ?? 0) << 8) |
      (bytes[offset + 7] ?? 0)) >>>
    0;
  return { offset: start, end, seq };
}
