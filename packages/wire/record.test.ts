import { expect, test } from "bun:test";
import {
  decodeCaptureRecord,
  decodeDebugRecord,
  decodeDropRecord,
  decodePolicyVerdictRecord,
  decodeTraceRecord,
  encodeDebugRecord,
  encodeDropRecord,
  encodePolicyVerdictRecord,
  encodeTraceRecord,
} from "./index.ts";
import { malformed } from "./test-helpers.ts";

const data = new Uint8Array([0x45, 0, 0, 20]);
const header = { flags: 0, cpu: 1, origLen: 60, tsBootNs: 5n, ifindex: 2, flowHash: 7 };
const packet = { ...header, l3Proto: 0x0800, netnsCookie: 9n, data };
const trace = encodeTraceRecord({
  ...packet,
  type: 4,
  obsPoint: 3,
  version: 2,
  mark: 0,
  pktType: 0,
});
const drop = encodeDropRecord({
  ...packet,
  type: 1,
  dropSource: 0,
  version: 1,
  reason: 2,
  obsPoint: 0,
  location: 0n,
});
const verdict = encodePolicyVerdictRecord({
  ...packet,
  ruleId: 1,
  matchType: 0,
  action: 0,
  direction: 0,
  obsPoint: 3,
});
const debug = encodeDebugRecord({
  ...header,
  subtype: 1,
  arg1: 0,
  arg2: 0,
  arg3: 0,
  netnsCookie: 0n,
});

/** A capture record: header (type 6, version 1, cap_len 4) and 4 packet bytes. */
const capture = new Uint8Array(52);
capture.set([6, 3, 1, 0], 0);
capture[12] = 4;

const withByte = (b: Uint8Array, at: number, value: number) =>
  Object.assign(b.slice(), { [at]: value });
const plusOne = (b: Uint8Array) => Uint8Array.from([...b, 0]);

test.each<[string, () => unknown, string]>([
  [
    "trace header",
    () => decodeTraceRecord(trace.subarray(0, 8)),
    "record too short: 8 bytes, header needs 16",
  ],
  [
    "trace type",
    () => decodeTraceRecord(withByte(trace, 0, 9)),
    "not a trace record: type 9, expected 4",
  ],
  [
    "trace version",
    () => decodeTraceRecord(withByte(trace, 2, 9)),
    "trace record version 9 unsupported, expected 2",
  ],
  [
    "trace fixed",
    () => decodeTraceRecord(trace.subarray(0, 20)),
    "trace record too short: 20 bytes, fixed part needs 48",
  ],
  [
    "trace beyond",
    () => decodeTraceRecord(trace.subarray(0, 50)),
    "trace record cap_len 4 beyond sample: only 2 bytes follow the fixed part",
  ],
  [
    "trace trailing",
    () => decodeTraceRecord(plusOne(trace)),
    "trace record has 1 bytes after cap_len 4",
  ],
  ["drop header", () => decodeDropRecord(drop.subarray(0, 8)), "drop record too short: 8 bytes"],
  ["drop type", () => decodeDropRecord(withByte(drop, 0, 9)), "drop record expected type 1, got 9"],
  [
    "drop version",
    () => decodeDropRecord(withByte(drop, 2, 9)),
    "drop record version 9 unsupported, expected 1",
  ],
  [
    "drop fixed",
    () => decodeDropRecord(drop.subarray(0, 20)),
    "drop record too short: 20 bytes, fixed part needs 56",
  ],
  [
    "drop beyond",
    () => decodeDropRecord(drop.subarray(0, 58)),
    "drop record cap_len 4 beyond sample: 2 bytes follow",
  ],
  [
    "drop trailing",
    () => decodeDropRecord(plusOne(drop)),
    "drop record has 1 bytes after cap_len 4",
  ],
  [
    "verdict type",
    () => decodePolicyVerdictRecord(withByte(verdict, 0, 9)),
    "not a policy verdict record: type 9, expected 5",
  ],
  [
    "verdict beyond",
    () => decodePolicyVerdictRecord(verdict.subarray(0, 58)),
    "policy verdict record cap_len 4 but 2 bytes follow the fixed part",
  ],
  [
    "verdict trailing",
    () => decodePolicyVerdictRecord(plusOne(verdict)),
    "policy verdict record cap_len 4 but 5 bytes follow the fixed part",
  ],
  [
    "debug type",
    () => decodeDebugRecord(withByte(debug, 0, 9)),
    "not a debug record: type 9, expected 2",
  ],
  [
    "debug short",
    () => decodeDebugRecord(debug.subarray(0, 40)),
    "debug record too short: 40 bytes, needs 56",
  ],
  [
    "debug trailing",
    () => decodeDebugRecord(plusOne(debug)),
    "debug record has 1 bytes after its 56",
  ],
  [
    "capture short",
    () => decodeCaptureRecord(capture.subarray(0, 20)),
    "capture record: 20 bytes, shorter than 48",
  ],
  ["capture type", () => decodeCaptureRecord(withByte(capture, 0, 9)), "capture record: type 9"],
  [
    "capture version",
    () => decodeCaptureRecord(withByte(capture, 2, 9)),
    "capture record: version 9",
  ],
  [
    "capture beyond",
    () => decodeCaptureRecord(capture.subarray(0, 50)),
    "capture record: 50 bytes, cap_len 4",
  ],
  [
    "capture trailing",
    () => decodeCaptureRecord(plusOne(capture)),
    "capture record: 53 bytes, cap_len 4",
  ],
])("wire record - %s check keeps its message", (_name, decode, message) => {
  expect(malformed(decode).message).toBe(message);
});
