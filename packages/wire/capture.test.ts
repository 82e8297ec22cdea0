import { beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import {
  CAPTURE_FILTER_LAYOUT,
  CAPTURE_FILTERS_LAYOUT,
  CAPTURE_LAYOUT,
  decodeCaptureRecord,
  encodeCaptureFilters,
} from "./capture.ts";
import { type BtfStructs, bpfBuildDir, expectMatchesBtf, loadBtfStructs } from "./test-helpers.ts";

let btf: BtfStructs;

beforeAll(async () => {
  btf = await loadBtfStructs(join(bpfBuildDir, "capture.bpf.o"));
});

test.each<[string, { size: number; fields: Record<string, { offset: number; size: number }> }]>([
  ["pscope_capture", CAPTURE_LAYOUT],
  ["pscope_capture_filter", CAPTURE_FILTER_LAYOUT],
  ["pscope_capture_filters", CAPTURE_FILTERS_LAYOUT],
])("capture layout - %s offsets and sizes match the BTF", (name, layout) => {
  expectMatchesBtf(btf, name, layout);
});

test("capture filters - host bits cleared, slots and lengths placed", () => {
  const b = encodeCaptureFilters(
    [
      {
        family: 4,
        proto: 6,
        srcAddr: new Uint8Array([10, 1, 2, 3]),
        srcPrefix: 20,
        dstAddr: new Uint8Array([10, 9, 9, 9]),
        dstPrefix: 0,
        srcPort: 0,
        dstPort: 80,
        slot: 3,
      },
    ],
    new Map([[3, 100]]),
  );
  const dv = new DataView(b.buffer);
  expect(dv.getUint32(0, true)).toBe(1);
  expect(dv.getUint32(8 + 12, true)).toBe(100);
  const base = CAPTURE_FILTERS_LAYOUT.fields.filters.offset;
  expect([...b.subarray(base + 8, base + 12)]).toEqual([10, 1, 0, 0]);
  expect([...b.subarray(base + 24, base + 28)]).toEqual([0, 0, 0, 0]);
  expect(dv.getUint16(base + 6, true)).toBe(80);
  expect(dv.getUint32(base + 40, true)).toBe(3);
  expect(() =>
    encodeCaptureFilters(
      [
        {
          family: 6,
          proto: 0,
          srcAddr: new Uint8Array(4),
          srcPrefix: 0,
          dstAddr: new Uint8Array(4),
          dstPrefix: 0,
          srcPort: 0,
          dstPort: 0,
          slot: 0,
        },
      ],
      new Map(),
    ),
  ).toThrow(/address length/);
});

test("capture record - decodes, refuses a wrong length naming it", () => {
  const b = new Uint8Array(48 + 3);
  const dv = new DataView(b.buffer);
  b[0] = 6;
  b[2] = 1;
  dv.setUint32(8, 90, true);
  dv.setUint32(12, 3, true);
  dv.setUint32(28, 0b101, true);
  b.set([1, 2, 3], 48);
  const r = decodeCaptureRecord(b);
  expect(r.origLen).toBe(90);
  expect(r.recordings).toBe(5);
  expect([...r.data]).toEqual([1, 2, 3]);
  expect(() => decodeCaptureRecord(b.subarray(0, 50))).toThrow(/cap_len 3/);
});
