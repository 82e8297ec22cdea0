/** Plain decoded packet headers, independent of any protobuf type. */

/** Ethernet II header, after any 802.1Q/802.1ad tags were stripped. */
export interface EthernetHeader {
  /** Source MAC as lower-case "aa:bb:cc:dd:ee:ff". */
  source: string;
  /** Destination MAC as lower-case "aa:bb:cc:dd:ee:ff". */
  destination: string;
  /** EtherType of the payload (after VLAN tags). */
  etherType: number;
  /** VLAN IDs of the 802.1Q/802.1ad tags, outermost first. */
  vlanIds: number[];
}

/** ARP for IPv4 over Ethernet. */
export interface ArpPacket {
  /** 1 = request, 2 = reply. */
  operation: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

/** IPv4 or IPv6 header, with extension headers already skipped. */
export interface IpHeader {
  version: 4 | 6;
  /** Textual source address (dotted quad / RFC 5952). */
  source: string;
  /** Textual destination address. */
  destination: string;
  /** Upper-layer protocol number (after IPv6 extension headers). */
  protocol: number;
  /** Fragment offset in bytes (0 for the first or an unfragmented packet). */
  fragmentOffset: number;
  /** More-fragments flag. */
  moreFragments: boolean;
  /** TTL / hop limit. */
  ttl: number;
}

/** TCP flag bits, named like Hubble's flow.TCPFlags. */
export interface TcpFlags {
  FIN: boolean;
  SYN: boolean;
  RST: boolean;
  PSH: boolean;
  ACK: boolean;
  URG: boolean;
  ECE: boolean;
  CWR: boolean;
  NS: boolean;
}

export interface TcpHeader {
  kind: "tcp";
  sourcePort: number;
  destinationPort: number;
  flags: TcpFlags;
}

export interface UdpHeader {
  kind: "udp";
  sourcePort: number;
  destinationPort: number;
}

export interface SctpHeader {
  kind: "sctp";
  sourcePort: number;
  destinationPort: number;
}

export interface IcmpV4Header {
  kind: "icmpv4";
  type: number;
  code: number;
}

export interface IcmpV6Header {
  kind: "icmpv6";
  type: number;
  code: number;
}

/** Any decoded transport header. */
export type L4Header = TcpHeader | UdpHeader | SctpHeader | IcmpV4Header | IcmpV6Header;

/** Everything decoded from one captured packet. */
export interface DecodedPacket {
  ethernet?: EthernetHeader;
  arp?: ArpPacket;
  ip?: IpHeader;
  l4?: L4Header;
  /** True when decoding stopped because the capture ended inside a header. */
  truncated: boolean;
}

/** The transport payload of a TCP or UDP packet inside the capture. */
export interface TransportPayload {
  /** First payload byte in the capture. */
  offset: number;
  /** End of the captured payload (IP length fields exclude padding; a short capture ends sooner). */
  end: number;
  /** TCP sequence number of the first payload byte (unsigned 32 bit); absent for UDP. */
  seq?: number;
}

/**
 * A byte range inside a capture: `bytes[offset, end)` is the current layer and
 * everything after it. `end` may be less than `bytes.length` when a length
 * field (IPv4 total length, IPv6 payload length) says the rest is padding.
 */
export interface Span {
  bytes: Uint8Array;
  offset: number;
  end: number;
}

/** Number of bytes available in a span. */
export function spanLength(span: Span): number {
  return span.end - span.offset;
}

/** Big-endian u16 at `offset`; the caller has checked the bounds. */
export function readU16(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] ?? 0) << 8) | (bytes[offset + 1] ?? 0);
}

/** Byte at `offset`; the caller has checked the bounds. */
export function readU8(bytes: Uint8Array, offset: number): number {
  return bytes[offset] ?? 0;
}
