/**
 * Recorder capture records and filters (bpf/capture.bpf.c; `struct pscope_capture`,
 * `struct pscope_capture_filter(s)` in periscope.h). capture.test.ts checks every
 * layout against the BTF of capture.bpf.o.
 */
import { MESSAGE_TYPE } from "@periscope/model";
import { HDR_LAYOUT, HDR_SIZE } from "./header.ts";
import type { StructLayout } from "./layout.ts";
import { checkRecord, MalformedRecordError, type RecordSpec } from "./record.ts";

/** Record type of a capture record (`PSCOPE_REC_CAPTURE`): Cilium's RECORDER_CAPTURE. */
export const RECORD_TYPE_CAPTURE = MESSAGE_TYPE.RECORDER_CAPTURE;
/** Format version of capture records (`PSCOPE_CAPTURE_VERSION`). */
export const CAPTURE_VERSION = 1;
/** Recordings one capture program serves at once (`PSCOPE_CAPTURE_MAX_RECORDINGS`). */
export const CAPTURE_MAX_RECORDINGS = 32;
/** Filters of all recordings together (`PSCOPE_CAPTURE_MAX_FILTERS`). */
export const CAPTURE_MAX_FILTERS = 64;
/** Largest capture per packet, bytes (`PSCOPE_CAPTURE_MAX_LEN`). */
export const CAPTURE_MAX_LEN = 65535;
/** Size of the fixed part of a capture record; `cap_len` packet bytes follow. */
export const CAPTURE_FIXED_SIZE = 48;

/** The constants above by their C names (merged into HEADER_CONSTANTS). */
export const CAPTURE_CONSTANTS: Readonly<Record<string, number>> = {
  PSCOPE_REC_CAPTURE: RECORD_TYPE_CAPTURE,
  PSCOPE_CAPTURE_VERSION: CAPTURE_VERSION,
  PSCOPE_CAPTURE_MAX_RECORDINGS: CAPTURE_MAX_RECORDINGS,
  PSCOPE_CAPTURE_MAX_FILTERS: CAPTURE_MAX_FILTERS,
  PSCOPE_CAPTURE_MAX_LEN: CAPTURE_MAX_LEN,
};

/** `struct pscope_capture` (fixed part; packet bytes follow). */
export const CAPTURE_LAYOUT = {
  size: CAPTURE_FIXED_SIZE,
  fields: {
    hdr: { offset: 0, size: HDR_SIZE },
    ts_boot_ns: { offset: 16, size: 8 },
    ifindex: { offset: 24, size: 4 },
    recordings: { offset: 28, size: 4 },
    netns_cookie: { offset: 32, size: 8 },
    l3_proto: { offset: 40, size: 2 },
    _pad0: { offset: 42, size: 2 },
    _pad1: { offset: 44, size: 4 },
  },
} as const satisfies StructLayout;

/** `struct pscope_capture_filter`. */
export const CAPTURE_FILTER_LAYOUT = {
  size: 48,
  fields: {
    family: { offset: 0, size: 1 },
    proto: { offset: 1, size: 1 },
    src_prefix: { offset: 2, size: 1 },
    dst_prefix: { offset: 3, size: 1 },
    src_port: { offset: 4, size: 2 },
    dst_port: { offset: 6, size: 2 },
    src_addr: { offset: 8, size: 16 },
    dst_addr: { offset: 24, size: 16 },
    recording: { offset: 40, size: 4 },
    _pad0: { offset: 44, size: 4 },
  },
} as const satisfies StructLayout;

/** `struct pscope_capture_filters`, the single value of the `capture_filters` map. */
export const CAPTURE_FILTERS_LAYOUT = {
  size: 8 + 4 * CAPTURE_MAX_RECORDINGS + CAPTURE_FILTER_LAYOUT.size * CAPTURE_MAX_FILTERS,
  fields: {
    n_filters: { offset: 0, size: 4 },
    _pad0: { offset: 4, size: 4 },
    cap_len: { offset: 8, size: 4 * CAPTURE_MAX_RECORDINGS },
    filters: {
      offset: 8 + 4 * CAPTURE_MAX_RECORDINGS,
      size: CAPTURE_FILTER_LAYOUT.size * CAPTURE_MAX_FILTERS,
    },
  },
} as const satisfies StructLayout;

/** One kernel filter: addresses as 4 (IPv4) or 16 (IPv6) bytes, prefix bits of each. */
export interface KernelCaptureFilter {
  readonly family: 4 | 6;
  /** IPPROTO_*, 0 = any. */
  readonly proto: number;
  readonly srcAddr: Uint8Array;
  readonly srcPrefix: number;
  readonly dstAddr: Uint8Array;
  readonly dstPrefix: number;
  /** 0 = any. */
  readonly srcPort: number;
  readonly dstPort: number;
  /** Recording slot, 0..CAPTURE_MAX_RECORDINGS-1. */
  readonly slot: number;
}

function putPrefix(view: Uint8Array, at: number, addr: Uint8Array, bits: number): void {
  for (let i = 0; i < addr.length && i * 8 < bits; i++) {
    const keep = Math.min(8, bits - i * 8);
    view[at + i] = (addr[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
}

/**
 * Encodes the `capture_filters` value: `filters` (at most CAPTURE_MAX_FILTERS) and the
 * capture length of each slot (`capLen[slot]`, 1..CAPTURE_MAX_LEN). Host bits of the
 * addresses are cleared. Throws RangeError for out-of-range input.
 */
export function encodeCaptureFilters(
  filters: readonly KernelCaptureFilter[],
  capLen: ReadonlyMap<number, number>,
): Uint8Array {
  if (filters.length > CAPTURE_MAX_FILTERS) {
    throw new RangeError(`at most ${CAPTURE_MAX_FILTERS} capture filters, got ${filters.length}`);
  }
  const out = new Uint8Array(CAPTURE_FILTERS_LAYOUT.size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, filters.length, true);
  for (const [slot, len] of capLen) {
    if (slot < 0 || slot >= CAPTURE_MAX_RECORDINGS || len < 1 || len > CAPTURE_MAX_LEN) {
      throw new RangeError(`capture length ${len} for slot ${slot} out of range`);
    }
    dv.setUint32(CAPTURE_FILTERS_LAYOUT.fields.cap_len.offset + 4 * slot, len, true);
  }
  const F = CAPTURE_FILTER_LAYOUT.fields;
  filters.forEach((f, i) => {
    const base = CAPTURE_FILTERS_LAYOUT.fields.filters.offset + i * CAPTURE_FILTER_LAYOUT.size;
    const width = f.family === 4 ? 32 : 128;
    if (f.srcAddr.length * 8 !== width || f.dstAddr.length * 8 !== width) {
      throw new RangeError(`filter ${i}: address length does not match IPv${f.family}`);
    }
    if (f.srcPrefix > width || f.dstPrefix > width || f.srcPrefix < 0 || f.dstPrefix < 0) {
      throw new RangeError(`filter ${i}: prefix longer than the address`);
    }
    if (f.slot < 0 || f.slot >= CAPTURE_MAX_RECORDINGS) {
      throw new RangeError(`filter ${i}: slot ${f.slot} out of range`);
    }
    out[base + F.family.offset] = f.family;
    out[base + F.proto.offset] = f.proto;
    out[base + F.src_prefix.offset] = f.srcPrefix;
    out[base + F.dst_prefix.offset] = f.dstPrefix;
    dv.setUint16(base + F.src_port.offset, f.srcPort, true);
    dv.setUint16(base + F.dst_port.offset, f.dstPort, true);
    putPrefix(out, base + F.src_addr.offset, f.srcAddr, f.srcPrefix);
    putPrefix(out, base + F.dst_addr.offset, f.dstAddr, f.dstPrefix);
    dv.setUint32(base + F.recording.offset, f.slot, true);
  });
  return out;
}

/** A decoded capture record; `data` is a view into the input. */
export interface CaptureRecord {
  /** Observation point (PSCOPE_OBS_*). */
  readonly obsPoint: number;
  readonly flags: number;
  readonly origLen: number;
  readonly tsBootNs: bigint;
  readonly ifindex: number;
  /** Bit i: recording slot i matched. */
  readonly recordings: number;
  readonly netnsCookie: bigint;
  readonly data: Uint8Array;
}

/**
 * What a capture record must look like. `cap_len` is bounded by the sample length
 * alone; every check keeps the capture decoder's own wording.
 */
const CAPTURE_SPEC: RecordSpec = {
  name: "capture",
  type: RECORD_TYPE_CAPTURE,
  version: CAPTURE_VERSION,
  fixedSize: CAPTURE_FIXED_SIZE,
  maxCapLen: 0xffff_ffff,
  wording: {
    wrongType: (t) => `capture record: type ${t}`,
    badVersion: (v) => `capture record: version ${v}`,
    capLenBeyond: (c, a) => `capture record: ${CAPTURE_FIXED_SIZE + a} bytes, cap_len ${c}`,
    trailing: (x, c) => `capture record: ${CAPTURE_FIXED_SIZE + c + x} bytes, cap_len ${c}`,
  },
};

/**
 * Decodes one capture ring sample (exactly `48 + cap_len` bytes); `data` is a view into `b`.
 * @throws MalformedRecordError (an Error) naming what is wrong.
 */
export function decodeCaptureRecord(b: Uint8Array): CaptureRecord {
  if (b.length < CAPTURE_FIXED_SIZE) {
    throw new MalformedRecordError(
      "too_short",
      `capture record: ${b.length} bytes, shorter than ${CAPTURE_FIXED_SIZE}`,
    );
  }
  const { view: dv } = checkRecord(b, CAPTURE_SPEC);
  const h = HDR_LAYOUT.fields;
  const c = CAPTURE_LAYOUT.fields;
  return {
    obsPoint: b[h.subtype.offset] ?? 0,
    flags: b[h.flags.offset] ?? 0,
    origLen: dv.getUint32(h.orig_len.offset, true),
    tsBootNs: dv.getBigUint64(c.ts_boot_ns.offset, true),
    ifindex: dv.getUint32(c.ifindex.offset, true),
    recordings: dv.getUint32(c.recordings.offset, true),
    netnsCookie: dv.getBigUint64(c.netns_cookie.offset, true),
    data: b.subarray(CAPTURE_FIXED_SIZE),
  };
}
