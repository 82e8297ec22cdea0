import { formatIPv6 } from "@periscope/model";
import { PacketDecodeError } from "./errors.ts";
import type { IpHeader, Span } from "./types.ts";
import { readU8, readU16, spanLength } from "./types.ts";

const IPV6_HEADER_LEN = 40;

/** IPv6 extension headers the decoder skips to find the upper layer. */
export const IPV6_EXT = {
  HOP_BY_HOP: 0,
  ROUTING: 43,
  FRAGMENT: 44,
  DESTINATION_OPTIONS: 60,
} as const;

/** Bound on the extension header chain, so a crafted packet cannot loop long. */
const MAX_EXTENSION_HEADERS = 16;

/**
 * Decode an IPv6 header and skip hop-by-hop, routing, fragment and
 * destination-options extension headers. `header.protocol` is the upper-layer
 * protocol; a non-first fragment has `fragmentOffset > 0`. Returns undefined
 * when the capture ends inside the fixed header; a capture that ends inside
 * the extension chain returns the header with `truncated` and an empty
 * payload. Throws PacketDecodeError for a wrong version.
 */
export function decodeIPv6(
  span: Span,
): { header: IpHeader; payload: Span; truncated: boolean } | undefined {
  if (spanLength(span) < IPV6_HEADER_LEN) return undefined;
  const { bytes, offset } = span;
  const version = readU8(bytes, offset) >> 4;
  if (version !== 6) throw new PacketDecodeError("ipv6", `version ${version}, expected 6`);
  const payloadLen = readU16(bytes, offset + 4);
  const header: IpHeader = {
    version: 6,
    source: formatIPv6(bytes, offset + 8),
    destination: formatIPv6(bytes, offset + 24),
    protocol: readU8(bytes, offset + 6),
    fragmentOffset: 0,
    moreFragments: false,
    ttl: readU8(bytes, offset + 7),
  };
  // Payload length 0 means a jumbogram or an offloaded super-packet: use the capture.
  const end =
    payloadLen === 0 ? span.end : Math.min(span.end, offset + IPV6_HEADER_LEN + payloadLen);
  let next = offset + IPV6_HEADER_LEN;
  const empty = { bytes, offset: end, end };
  for (let count = 0; isExtension(header.protocol); count++) {
    if (count >= MAX_EXTENSION_HEADERS) {
      throw new PacketDecodeError("ipv6", `more than ${MAX_EXTENSION_HEADERS} extension headers`);
    }
    if (end - next < 8) return { header, payload: empty, truncated: true };
    const nextHeader = readU8(bytes, next);
    let extLen = (readU8(bytes, next + 1) + 1) * 8;
    if (header.protocol === IPV6_EXT.FRAGMENT) {
      extLen = 8;
      const fragment = readU16(bytes, next + 2);
      header.fragmentOffset = fragment & 0xfff8;
      header.moreFragments = (fragment & 0x1) !== 0;
    }
    header.protocol = nextHeader;
    next += extLen;
  }
  if (next > end) return { header, payload: empty, truncated: true };
  return { header, payload: { bytes, offset: next, end }, truncated: false };
}

function isExtension(protocol: number): boolean {
  return (
    protocol === IPV6_EXT.HOP_BY_HOP ||
    protocol === IPV6_EXT.ROUTING ||
    protocol === IPV6_EXT.FRAGMENT ||
    protocol === IPV6_EXT.DESTINATION_OPTIONS
  );
}
