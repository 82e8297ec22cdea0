import { expect, test } from "bun:test";
import { MAX_CAPTURE } from "@periscope/model";
import {
  decodeRecordType,
  decodeTraceRecord,
  EncodeRangeError,
  encodeTraceRecord,
  FLAG_TRUNCATED,
  type MalformedReason,
  MalformedRecordError,
  OBS_FROM_NETWORK,
  OBS_TO_NETWORK,
  RECORD_TYPE_TRACE,
  readTraceFlowHash,
  TRACE_FIXED_SIZE,
  TRACE_LAYOUT,
  TRACE_REASON,
  TRACE_VERSION,
  type TraceRecordInit,
} from "./index.ts";

const packet = Uint8Array.from({ length: 64 }, (_, i) => i);

function sample(over: Partial<TraceRecordInit> = {}): TraceRecordInit {
  return {
    type: RECORD_TYPE_TRACE,
    obsPoint: OBS_FROM_NETWORK,
    version: TRACE_VERSION,
    flags: FLAG_TRUNCATED,
    cpu: 1,
    origLen: 98,
    tsBootNs: 123_456_789_012n,
    ifindex: 7,
    mark: 0xdeadbeef,
    flowHash: 0x89abcdef,
    l3Proto: 0x0800,
    pktType: 0,
    traceReason: 2,
    netnsCookie: 0x1_0000_0001n,
    data: packet,
    ...over,
  };
}

test.each([
  ["ingress, truncated", sample()],
  ["egress, whole packet", sample({ obsPoint: OBS_TO_NETWORK, flags: 0, origLen: 64 })],
  ["no captured bytes", sample({ data: new Uint8Array(0), origLen: 60 })],
  ["largest capture", sample({ data: new Uint8Array(MAX_CAPTURE).fill(0xaa), origLen: 9000 })],
  [
    "IPv6, max u32/u64 fields",
    sample({ l3Proto: 0x86dd, cpu: 0xffffffff, netnsCookie: 2n ** 64n - 1n }),
  ],
])("wire decode - round trip: %s", (_name, init) => {
  const bytes = encodeTraceRecord(init);
  expect(bytes.length).toBe(TRACE_FIXED_SIZE + init.data.length);
  expect(decodeRecordType(bytes)).toBe(RECORD_TYPE_TRACE);
  expect(decodeTraceRecord(bytes)).toEqual({
    ...init,
    traceReason: init.traceReason ?? TRACE_REASON.UNKNOWN,
    capLen: init.data.length,
  });
  expect(readTraceFlowHash(bytes)).toBe(init.flowHash);
});

test("wire decode - reads fields at the C offsets, l3_proto in network order", () => {
  const bytes = encodeTraceRecord(sample());
  expect(bytes[TRACE_LAYOUT.fields.l3_proto.offset]).toBe(0x08);
  expect(bytes[TRACE_LAYOUT.fields.l3_proto.offset + 1]).toBe(0x00);
  expect(bytes[TRACE_LAYOUT.fields.ifindex.offset]).toBe(7);
  expect(bytes[1]).toBe(OBS_FROM_NETWORK);
  expect(bytes[TRACE_LAYOUT.fields.trace_reason.offset]).toBe(2);
});

test("wire decode - decodes a record inside a larger buffer", () => {
  const bytes = encodeTraceRecord(sample());
  const big = new Uint8Array(bytes.length + 20);
  big.set(bytes, 10);
  const rec = decodeTraceRecord(big.subarray(10, 10 + bytes.length));
  expect(rec.ifindex).toBe(7);
  expect(rec.data).toEqual(packet);
});

function withCapLen(capLen: number): Uint8Array {
  const bytes = encodeTraceRecord(sample());
  new DataView(bytes.buffer).setUint32(12, capLen, true);
  return bytes;
}

function patched(offset: number, value: number): Uint8Array {
  const bytes = encodeTraceRecord(sample());
  bytes[offset] = value;
  return bytes;
}

test.each<[string, Uint8Array, MalformedReason, RegExp]>([
  ["empty", new Uint8Array(0), "too_short", /too short: 0 bytes/],
  ["partial header", new Uint8Array(15), "too_short", /header needs 16/],
  ["header only", encodeTraceRecord(sample()).subarray(0, 16), "too_short", /fixed part needs 48/],
  ["wrong type", patched(0, 9), "wrong_type", /type 9/],
  ["bad version", patched(2, 9), "bad_version", /version 9/],
  ["cap_len beyond sample", withCapLen(65), "cap_len_beyond_sample", /cap_len 65 beyond sample/],
  ["trailing bytes", withCapLen(10), "trailing_bytes", /54 bytes after cap_len 10/],
  ["cap_len above max", withCapLen(MAX_CAPTURE + 1), "cap_len_too_large", /exceeds maximum/],
])("wire decode - rejects malformed input: %s", (_name, bytes, reason, message) => {
  let caught: unknown;
  try {
    decodeTraceRecord(bytes);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(MalformedRecordError);
  const err = caught as MalformedRecordError;
  expect(err.name).toBe("MalformedRecordError");
  expect(err.reason).toBe(reason);
  expect(err.message).toMatch(message);
});

test("wire decode - decodeRecordType rejects a partial header", () => {
  expect(() => decodeRecordType(new Uint8Array(8))).toThrow(MalformedRecordError);
  expect(() => readTraceFlowHash(new Uint8Array(20).fill(4))).toThrow(/fixed part needs 48/);
});

test("wire encode - refuses data beyond the maximum capture", () => {
  expect(() => encodeTraceRecord(sample({ data: new Uint8Array(MAX_CAPTURE + 1) }))).toThrow(
    EncodeRangeError,
  );
});
