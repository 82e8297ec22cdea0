import type { RawFrame } from "@periscope/proto";

/** Bytes before each record in RawFrame.packed_records: u32 length + 4 ignored bytes. */
export const PACKED_HEADER_SIZE = 8;

/** Bytes a record of `length` bytes takes in packed_records (header, record, padding to 8). */
export function packedSize(length: number): number {
  return (PACKED_HEADER_SIZE + length + 7) & ~7;
}

/** The records of a frame and how many of its packed records could not be read. */
export interface FrameRecords {
  /** `records`, then the packed ones, as views into the frame's bytes. */
  readonly records: Uint8Array[];
  /**
   * Packed records announced by packed_count but not readable (a length running past
   * the end, or fewer records than announced); they count as malformed records.
   */
  readonly malformed: number;
  /** What was wrong with packed_records, when malformed > 0. */
  readonly reason?: string;
}

/** Records a frame accounts for (before losses): `records` plus packed_count. */
export function rawFrameRecordCount(frame: RawFrame): number {
  return frame.records.length + frame.packedCount;
}

/**
 * Splits a RawFrame's records: the `records` field, then packed_records (see the
 * proto). Never throws: unreadable packed records are counted in `malformed`, and
 * packed records beyond packed_count are ignored.
 */
export function rawFrameRecords(frame: RawFrame): FrameRecords {
  const packed = frame.packedRecords;
  const want = frame.packedCount;
  if (want === 0 && packed.length === 0) return { records: frame.records, malformed: 0 };
  const records = frame.records.slice();
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  let off = 0;
  let got = 0;
  let reason: string | undefined;
  while (got < want) {
    if (off + PACKED_HEADER_SIZE > packed.length) {
      reason = `packed_records ends after ${got} of ${want} records`;
      break;
    }
    const len = view.getUint32(off, true);
    if (off + PACKED_HEADER_SIZE + len > packed.length) {
      reason = `packed record ${got} claims ${len} bytes, ${packed.length - off - PACKED_HEADER_SIZE} left`;
      break;
    }
    records.push(packed.subarray(off + PACKED_HEADER_SIZE, off + PACKED_HEADER_SIZE + len));
    off += packedSize(len);
    got++;
  }
  return reason === undefined
    ? { records, malformed: 0 }
    : { records, malformed: want - got, reason };
}
