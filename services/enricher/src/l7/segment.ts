/** The payload of one TCP segment, positioned in the byte stream of its direction. */
export interface Segment {
  bytes: Uint8Array;
  /** First new payload byte in `bytes`. */
  start: number;
  /** End of the captured payload in `bytes` (≤ start + wireLen). */
  capEnd: number;
  /** New payload bytes on the wire from `start` (more than captured when the capture was cut). */
  wireLen: number;
  /** True when this segment does not follow the bytes seen before in this direction. */
  gap: boolean;
  /** Kernel time of the packet, ns since the epoch. */
  timeNs: bigint;
}

/**
 * Where one direction of a TCP connection is: the next sequence number
 * expected. The same segment seen twice (at two observation points, or
 * retransmitted) is passed on once; a segment overlapping what was seen
 * passes on its new bytes only; a segment after a hole is marked `gap`.
 */
export class StreamPosition {
  private next: number | undefined;

  /**
   * Positions a segment of `wireLen` payload bytes starting at sequence `seq`
   * (captured in `bytes[offset, capEnd)`); undefined when it holds nothing new.
   * A SYN counts one sequence number.
   */
  place(
    seq: number,
    syn: boolean,
    bytes: Uint8Array,
    offset: number,
    capEnd: number,
    wireLen: number,
    timeNs: bigint,
  ): Segment | undefined {
    const dataSeq = syn ? (seq + 1) >>> 0 : seq;
    if (this.next === undefined) {
      this.next = (dataSeq + wireLen) >>> 0;
      return wireLen > 0 ? { bytes, start: offset, capEnd, wireLen, gap: true, timeNs } : undefined;
    }
    const ahead = (dataSeq - this.next) | 0;
    if (ahead + wireLen <= 0) return undefined; // all seen before
    if (ahead < 0) {
      // overlaps: skip what was seen
      const skip = -ahead;
      this.next = (dataSeq + wireLen) >>> 0;
      return {
        bytes,
        start: Math.min(offset + skip, capEnd),
        capEnd,
        wireLen: wireLen - skip,
        gap: false,
        timeNs,
      };
    }
    this.next = (dataSeq + wireLen) >>> 0;
    if (wireLen === 0) return undefined;
    return { bytes, start: offset, capEnd, wireLen, gap: ahead > 0, timeNs };
  }
}
