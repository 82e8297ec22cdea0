import type { Span, UdpHeader } from "./types.ts";
import { readU16, spanLength } from "./types.ts";

/** Decode the UDP ports; undefined when the capture ends before them. */
export function decodeUdp(span: Span): UdpHeader | undefined {
  if (spanLength(span) < 4) return undefined;
  return {
    kind: "udp",
    sourcePort: readU16(span.bytes, span.offset),
    destinationPort: readU16(span.bytes, span.offset + 2),
  };
}
