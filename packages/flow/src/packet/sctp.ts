import type { SctpHeader, Span } from "./types.ts";
import { readU16, spanLength } from "./types.ts";

/** Decode the SCTP common header's ports; undefined when they were not captured. */
export function decodeSctp(span: Span): SctpHeader | undefined {
  if (spanLength(span) < 4) return undefined;
  return {
    kind: "sctp",
    sourcePort: readU16(span.bytes, span.offset),
    destinationPort: readU16(span.bytes, span.offset + 2),
  };
}
