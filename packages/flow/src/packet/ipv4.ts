import { formatIPv4 } from "@periscope/model";
import { PacketDecodeError } from "./errors.ts";
import type { IpHeader, Span } from "./types.ts";
import { readU8, readU16, spanLength } from "./types.ts";

const IPV4_MIN_HEADER = 20;
const FLAG_MORE_FRAGMENTS = 0x2000;
const FRAGMENT_OFFSET_MASK = 0x1fff;

/**
 * Decode an IPv4 header, skipping options. Returns undefined when the capture
 * ends before the addresses; `payload` is limited by the total length field
 * (so Ethernet padding is not taken for L4 data) and is empty when the
 * capture ends inside the options. Throws PacketDecodeError for a wrong
 * version or inconsistent length fields.
 */
export function decodeIPv4(
  span: Span,
): { header: IpHeader; payload: Span; truncated: boolean } | undefined {
  if (spanLength(span) < IPV4_MIN_HEADER) return undefined;
  const { bytes, offset } = span;
  const versionIhl = readU8(bytes, offset);
  const version = versionIhl >> 4;
  if (version !== 4) throw new PacketDecodeError("ipv4", `version ${version}, expected 4`);
  const headerLen = (versionIhl & 0x0f) * 4;
  if (headerLen < IPV4_MIN_HEADER) {
    throw new PacketDecodeError("ipv4", `header length ${headerLen} < ${IPV4_MIN_HEADER}`);
  }
  const totalLen = readU16(bytes, offset + 2);
  // A zero total length is seen on segmentation-offloaded packets: use the capture.
  if (totalLen !== 0 && totalLen < headerLen) {
    throw new PacketDecodeError("ipv4", `total length ${totalLen} < header length ${headerLen}`);
  }
  const fragment = readU16(bytes, offset + 6);
  const header: IpHeader = {
    version: 4,
    source: formatIPv4(bytes, offset + 12),
    destination: formatIPv4(bytes, offset + 16),
    protocol: readU8(bytes, offset + 9),
    fragmentOffset: (fragment & FRAGMENT_OFFSET_MASK) * 8,
    moreFragments: (fragment & FLAG_MORE_FRAGMENTS) !== 0,
    ttl: readU8(bytes, offset + 8),
  };
  const packetEnd = totalLen === 0 ? span.end : Math.min(span.end, offset + totalLen);
  if (offset + headerLen > span.end) {
    return { header, payload: { bytes, offset: span.end, end: span.end }, truncated: true };
  }
  return {
    header,
    payload: { bytes, offset: offset + headerLen, end: packetEnd },
    truncated: false,
  };
}
