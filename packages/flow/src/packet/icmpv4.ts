import type { IcmpV4Header, Span } from "./types.ts";
import { readU8, spanLength } from "./types.ts";

/** Decode ICMPv4 type and code; undefined when they were not captured. */
export function decodeIcmpV4(span: Span): IcmpV4Header | undefined {
  if (spanLength(span) < 2) return undefined;
  return {
    kind: "icmpv4",
    type: readU8(span.bytes, span.offset),
    code: readU8(span.bytes, span.offset + 1),
  };
}
