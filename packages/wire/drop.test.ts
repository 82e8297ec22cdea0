import { beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import {
  DROP_FIXED_SIZE,
  DROP_LAYOUT,
  DROP_RODATA,
  DROP_SOURCE,
  DROP_VERSION,
  decodeDropRecord,
  encodeDropRecord,
  FLAG_L3,
  type MalformedReason,
  RECORD_TYPE_DROP,
  readFlowHash,
} from "./index.ts";
import {
  type BtfStructs,
  bpfBuildDir,
  type ElfSymbol,
  expectMatchesBtf,
  loadBtfStructs,
  malformed,
  readElfSymbols,
} from "./test-helpers.ts";

const objectPath = join(bpfBuildDir, "drop.bpf.o");
let btf: BtfStructs;
let symbols: Map<string, ElfSymbol>;

beforeAll(async () => {
  btf = await loadBtfStructs(objectPath);
  symbols = await readElfSymbols(objectPath);
});

test("wire drop - pscope_drop offsets and sizes match the BTF of drop.bpf.o", () => {
  expectMatchesBtf(btf, "pscope_drop", DROP_LAYOUT);
  expect(DROP_LAYOUT.fields.data.offset).toBe(DROP_FIXED_SIZE);
});

test.each(Object.entries(DROP_RODATA))(
  "wire drop - .rodata global %s sits where the loader writes it",
  (name, layout) => {
    expect(symbols.get(name)?.value).toBe(layout.offset);
    expect(symbols.get(name)?.size).toBe(layout.size);
  },
);

const base = {
  type: RECORD_TYPE_DROP,
  dropSource: DROP_SOURCE.KERNEL,
  version: DROP_VERSION,
  flags: FLAG_L3,
  cpu: 1,
  origLen: 60,
  tsBootNs: 123_456_789n,
  ifindex: 7,
  reason: 3,
  flowHash: 0xdeadbeef,
  l3Proto: 0x0800,
  obsPoint: 0,
  netnsCookie: 4096n,
  location: 0xffffffff81234567n,
  data: Uint8Array.from([0x45, 0, 0, 20]),
};

test("wire drop - decode reads every field of hand-built bytes", () => {
  const bytes = new Uint8Array(DROP_FIXED_SIZE + 2);
  const v = new DataView(bytes.buffer);
  bytes.set([1, 2, 1, 0x03], 0);
  v.setUint32(4, 3, true);
  v.setUint32(8, 1500, true);
  v.setUint32(12, 2, true);
  v.setBigUint64(16, 99n, true);
  v.setUint32(24, 12, true);
  v.setUint32(28, 133, true);
  v.setUint32(32, 0x01020304, true);
  v.setUint16(36, 0x86dd, false);
  bytes[38] = 11;
  v.setBigUint64(40, 77n, true);
  v.setBigUint64(48, 0n, true);
  bytes.set([0x60, 0x00], 56);
  const rec = decodeDropRecord(bytes);
  expect({ ...rec, data: [...rec.data] }).toEqual({
    type: 1,
    dropSource: DROP_SOURCE.POLICY,
    version: 1,
    flags: 3,
    cpu: 3,
    origLen: 1500,
    capLen: 2,
    tsBootNs: 99n,
    ifindex: 12,
    reason: 133,
    flowHash: 0x01020304,
    l3Proto: 0x86dd,
    obsPoint: 11,
    netnsCookie: 77n,
    location: 0n,
    data: [0x60, 0x00],
  });
  expect(readFlowHash(bytes)).toBe(0x01020304);
});

test("wire drop - encode and decode round-trip", () => {
  const rec = decodeDropRecord(encodeDropRecord(base));
  expect({ ...rec, data: [...rec.data] }).toEqual({ ...base, capLen: 4, data: [...base.data] });
});

test.each<[string, (b: Uint8Array) => Uint8Array, string]>([
  ["too_short", (b) => b.subarray(0, 40), "too_short"],
  ["wrong_type", (b) => Uint8Array.from(b).fill(4, 0, 1), "wrong_type"],
  ["bad_version", (b) => Uint8Array.from(b).fill(9, 2, 3), "bad_version"],
  ["trailing bytes", (b) => Uint8Array.from([...b, 0]), "trailing_bytes"],
  ["cap_len beyond sample", (b) => b.subarray(0, b.length - 1), "cap_len_beyond_sample"],
])("wire drop - decode rejects %s", (_name, mangle, reason) => {
  const err = malformed(() => decodeDropRecord(mangle(encodeDropRecord(base))));
  expect(err.reason).toBe(reason as MalformedReason);
});
