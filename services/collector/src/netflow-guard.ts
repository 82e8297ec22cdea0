/**
 * Plausibility of flow counters before they reach a record: a delta from the kernel
 * table (or the spill ring) and the totals of a record must describe packets that
 * could exist. Counters that cannot (negative, fewer bytes than IP headers, more
 * than the largest GSO packet per packet, a total above the record's u64) are
 * refused with the reason, so that the caller counts and logs them instead of
 * exporting an impossible value.
 */
import type { FlowCounters } from "@periscope/wire";

/** Largest u64, the widest count a record carries. */
export const U64_MAX = (1n << 64n) - 1n;
/** Bytes of the smallest IPv4 and IPv6 packet (L3 header alone). */
const MIN_L3 = { 4: 20n, 6: 40n } as const;
/** More L3 bytes than one packet (a GSO/BIG TCP super-packet included) can hold. */
const MAX_L3 = 1n << 20n;

/**
 * Why counters of `family` cannot be true, or undefined when they can. Drop-only
 * counters (no packets) are checked for their drop counts alone.
 */
export function implausibleCounters(family: 4 | 6, c: FlowCounters): string | undefined {
  if (c.packets < 0n || c.bytes < 0n || c.dropPackets < 0n || c.dropBytes < 0n) {
    return `negative count (packets ${c.packets}, bytes ${c.bytes})`;
  }
  if (c.packets > U64_MAX || c.bytes > U64_MAX || c.dropPackets > U64_MAX) {
    return `count above u64 (packets ${c.packets}, bytes ${c.bytes})`;
  }
  if (c.packets === 0n) return undefined;
  if (c.bytes < c.packets * MIN_L3[family]) {
    return `${c.bytes} bytes cannot hold ${c.packets} IPv${family} packets`;
  }
  if (c.bytes > c.packets * MAX_L3) {
    return `${c.bytes} bytes in ${c.packets} packets is more than ${MAX_L3} per packet`;
  }
  return undefined;
}
