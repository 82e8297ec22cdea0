import type { IcmpV6Header, Span } from "./types.ts";
import { readU8, spanLength } from "./types.ts";

/** Decode ICMPv6 type and code; undefined when they were not captured. */
export function decodeIcmpV6(span: Span): IcmpV6Header | undefined {
  if (spanLength(span) < 2) return undefined;
  return {
    kind: "icmpv6",
    type: readU8(span.bytes, span.offset),
    code: readU8(span.bytes, span.offset + 1),
  };
}
