import { formatIPv4, formatMac } from "@periscope/model";
import type { ArpPacket, Span } from "./types.ts";
import { readU8, readU16, spanLength } from "./types.ts";

const ARP_IPV4_LEN = 28;

/**
 * Decode ARP for IPv4 over Ethernet (htype 1, ptype 0x0800, 6/4 address
 * lengths). Returns undefined for other ARP flavours or a truncated capture.
 */
export function decodeArp(span: Span): ArpPacket | undefined {
  if (spanLength(span) < ARP_IPV4_LEN) return undefined;
  const { bytes, offset } = span;
  const ethernetIPv4 =
    readU16(bytes, offset) === 1 &&
    readU16(bytes, offset + 2) === 0x0800 &&
    readU8(bytes, offset + 4) === 6 &&
    readU8(bytes, offset + 5) === 4;
  if (!ethernetIPv4) return undefined;
  return {
    operation: readU16(bytes, offset + 6),
    senderMac: formatMac(bytes, offset + 8),
    senderIp: formatIPv4(bytes, offset + 14),
    targetMac: formatMac(bytes, offset + 18),
    targetIp: formatIPv4(bytes, offset + 24),
  };
}
