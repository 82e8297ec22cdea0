import { formatMac } from "@periscope/model";
import { PacketDecodeError } from "./errors.ts";
import type { EthernetHeader, Span } from "./types.ts";
import { readU16, spanLength } from "./types.ts";

/** EtherTypes the decoder knows. */
export const ETHERTYPE = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  QINQ: 0x88a8,
  IPV6: 0x86dd,
} as const;

const ETH_HEADER_LEN = 14;
const VLAN_TAG_LEN = 4;
/** Bound on stacked tags, so a crafted packet cannot loop for long. */
const MAX_VLAN_TAGS = 8;

/**
 * Decode an Ethernet II header and any 802.1Q / 802.1ad tags after it.
 * Throws PacketDecodeError when fewer than 14 bytes are present (there is
 * nothing to decode), returns the header and the payload span otherwise; a
 * capture that ends inside a VLAN tag yields the header with `truncated`.
 */
export function decodeEthernet(span: Span): {
  header: EthernetHeader;
  payload: Span;
  truncated: boolean;
} {
  if (spanLength(span) < ETH_HEADER_LEN) {
    throw new PacketDecodeError(
      "ethernet",
      `header truncated: ${spanLength(span)} bytes, need ${ETH_HEADER_LEN}`,
    );
  }
  const { bytes, offset } = span;
  const header: EthernetHeader = {
    destination: formatMac(bytes, offset),
    source: formatMac(bytes, offset + 6),
    etherType: readU16(bytes, offset + 12),
    vlanIds: [],
  };
  let next = offset + ETH_HEADER_LEN;
  while (header.etherType === ETHERTYPE.VLAN || header.etherType === ETHERTYPE.QINQ) {
    if (header.vlanIds.length >= MAX_VLAN_TAGS) {
      throw new PacketDecodeError("vlan", `more than ${MAX_VLAN_TAGS} stacked tags`);
    }
    if (span.end - next < VLAN_TAG_LEN) {
      return { header, payload: { bytes, offset: span.end, end: span.end }, truncated: true };
    }
    header.vlanIds.push(readU16(bytes, next) & 0x0fff);
    header.etherType = readU16(bytes, next + 2);
    next += VLAN_TAG_LEN;
  }
  return { header, payload: { bytes, offset: next, end: span.end }, truncated: false };
}
