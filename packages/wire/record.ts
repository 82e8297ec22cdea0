/**
 * The checks every kernel record decoder makes before reading fields: a full
 * common header, the record type, the format version, the fixed part, and
 * (for records with packet bytes) a `cap_len` that fits the sample exactly.
 */
import { MAX_CAPTURE } from "@periscope/model";
import { HDR_LAYOUT, HDR_SIZE } from "./header.ts";

/** What is wrong with a record, usable as a metrics label. */
export type MalformedReason =
  | "too_short"
  | "wrong_type"
  | "bad_version"
  | "cap_len_beyond_sample"
  | "trailing_bytes"
  | "cap_len_too_large";

/** A record that cannot be decoded; `reason` names the check that failed. */
export class MalformedRecordError extends Error {
  override readonly name = "MalformedRecordError";
  readonly reason: MalformedReason;

  constructor(reason: MalformedReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

/** Error messages of the checks; each record kind may word some differently. */
export interface RecordWording {
  headerTooShort(len: number): string;
  wrongType(type: number): string;
  badVersion(version: number): string;
  fixedTooShort(len: number): string;
  capLenTooLarge(capLen: number): string;
  capLenBeyond(capLen: number, available: number): string;
  trailing(extra: number, capLen: number): string;
}

/** What a record of one kind must look like. */
export interface RecordSpec {
  /** Name in messages, e.g. "trace" for "trace record ...". */
  readonly name: string;
  readonly type: number;
  readonly version: number;
  /** Bytes before the packet data, or the whole record when `sized`. */
  readonly fixedSize: number;
  /** Largest `cap_len` accepted; `MAX_CAPTURE` unless given. */
  readonly maxCapLen?: number;
  /** True for records without packet bytes: the sample is exactly `fixedSize` long. */
  readonly sized?: boolean;
  /** Messages that differ from the default wording. */
  readonly wording?: Partial<RecordWording>;
}

/** A record that passed {@link checkRecord}. */
export interface CheckedRecord {
  readonly view: DataView;
  readonly type: number;
  readonly version: number;
  /** Packet bytes after the fixed part; 0 for sized records. */
  readonly capLen: number;
}

/** The default messages for records of `spec`'s kind. */
export function defaultWording(spec: RecordSpec): RecordWording {
  const { type, version, fixedSize } = spec;
  const rec = `${spec.name} record`;
  return {
    headerTooShort: (len) => `record too short: ${len} bytes, header needs ${HDR_SIZE}`,
    wrongType: (t) => `not a ${rec}: type ${t}, expected ${type}`,
    badVersion: (v) => `${rec} version ${v} unsupported, expected ${version}`,
    fixedTooShort: (len) => `${rec} too short: ${len} bytes, fixed part needs ${fixedSize}`,
    capLenTooLarge: (c) => `${rec} cap_len ${c} exceeds maximum capture ${MAX_CAPTURE}`,
    capLenBeyond: (c, a) =>
      `${rec} cap_len ${c} beyond sample: only ${a} bytes follow the fixed part`,
    trailing: (x, c) => `${rec} has ${x} bytes after cap_len ${c}`,
  };
}

/** A DataView over exactly `bytes`. */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Checks the header, type, version, length and `cap_len` of one ring buffer sample.
 * @throws MalformedRecordError naming the failed check.
 */
export function checkRecord(bytes: Uint8Array, spec: RecordSpec): CheckedRecord {
  const len = bytes.byteLength;
  const h = HDR_LAYOUT.fields;
  if (len < HDR_SIZE) reject(spec, "too_short", (w) => w.headerTooShort(len));
  const type = bytes[h.type.offset] ?? 0;
  if (type !== spec.type) reject(spec, "wrong_type", (w) => w.wrongType(type));
  const version = bytes[h.version.offset] ?? 0;
  if (version !== spec.version) reject(spec, "bad_version", (w) => w.badVersion(version));
  if (len < spec.fixedSize) reject(spec, "too_short", (w) => w.fixedTooShort(len));
  const view = viewOf(bytes);
  if (spec.sized) {
    const extra = len - spec.fixedSize;
    if (extra > 0) reject(spec, "trailing_bytes", (w) => w.trailing(extra, 0));
    return { view, type, version, capLen: 0 };
  }
  const capLen = view.getUint32(h.cap_len.offset, true);
  if (capLen > (spec.maxCapLen ?? MAX_CAPTURE)) {
    reject(spec, "cap_len_too_large", (w) => w.capLenTooLarge(capLen));
  }
  const available = len - spec.fixedSize;
  if (capLen > available) {
    reject(spec, "cap_len_beyond_sample", (w) => w.capLenBeyond(capLen, available));
  }
  if (capLen < available) {
    reject(spec, "trailing_bytes", (w) => w.trailing(available - capLen, capLen));
  }
  return { view, type, version, capLen };
}

/** Throws the error of a failed check; the wording is built only here, off the hot path. */
function reject(
  spec: RecordSpec,
  reason: MalformedReason,
  message: (w: RecordWording) => string,
): never {
  throw new MalformedRecordError(reason, message({ ...defaultWording(spec), ...spec.wording }));
}

/** A value that does not fit the field it is meant for. */
export class EncodeRangeError extends Error {
  override readonly name = "EncodeRangeError";
}

/** The common header fields of a record to encode; `cap_len` is the data length. */
export interface HeaderInit {
  readonly type: number;
  readonly subtype: number;
  readonly version: number;
  readonly flags: number;
  /** hdr.source: the CPU that produced the record. */
  readonly cpu: number;
  readonly origLen: number;
}

/**
 * A record as the kernel emits it: `fixedSize + data.length` bytes with the
 * header written and `data` copied after the fixed part; the caller fills the rest.
 * @throws EncodeRangeError when `data` is longer than `MAX_CAPTURE`.
 */
export function newRecord(
  fixedSize: number,
  hdr: HeaderInit,
  data: Uint8Array = new Uint8Array(0),
): { bytes: Uint8Array; view: DataView } {
  if (data.length > MAX_CAPTURE) {
    throw new EncodeRangeError(`data is ${data.length} bytes, maximum capture ${MAX_CAPTURE}`);
  }
  const bytes = new Uint8Array(fixedSize + data.length);
  const view = new DataView(bytes.buffer);
  const h = HDR_LAYOUT.fields;
  view.setUint8(h.type.offset, hdr.type);
  view.setUint8(h.subtype.offset, hdr.subtype);
  view.setUint8(h.version.offset, hdr.version);
  view.setUint8(h.flags.offset, hdr.flags);
  view.setUint32(h.source.offset, hdr.cpu, true);
  view.setUint32(h.orig_len.offset, hdr.origLen, true);
  view.setUint32(h.cap_len.offset, data.length, true);
  bytes.set(data, fixedSize);
  return { bytes, view };
}
