import { beforeAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runOk } from "@periscope/testing";
import {
  DROP_FIXED_SIZE,
  DROP_LAYOUT,
  DROP_RODATA,
  DROP_SOURCE,
  DROP_VERSION,
  decodeDropRecord,
  encodeDropRecord,
  FLAG_L3,
  MalformedRecordError,
  RECORD_TYPE_DROP,
  readFlowHash,
} from "./index.ts";

const repoRoot = join(import.meta.dir, "..", "..");
const objectPath = join(repoRoot, "bpf", "build", "drop.bpf.o");

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}
let types = new Map<number, BtfType>();
let symbols = "";

function sizeOf(id: number): number {
  const t = types.get(id);
  if (!t) throw new Error(`BTF type ${id} missing`);
  if (t.kind === "ARRAY") return (t.nr_elems ?? 0) * sizeOf(t.type_id ?? 0);
  if (t.kind === "TYPEDEF" || t.kind === "CONST" || t.kind === "VOLATILE") {
    return sizeOf(t.type_id ?? 0);
  }
  return t.size ?? 0;
}

beforeAll(async () => {
  if (!existsSync(objectPath)) await runOk(["bash", join(repoRoot, "scripts", "build-bpf.sh")]);
  const json = JSON.parse(
    await runOk(["bpftool", "-j", "btf", "dump", "file", objectPath, "format", "raw"]),
  );
  types = new Map((json.types as BtfType[]).map((t) => [t.id, t]));
  symbols = await runOk(["readelf", "-sW", objectPath]);
});

test("wire drop - pscope_drop offsets and sizes match the BTF of drop.bpf.o", () => {
  const s = [...types.values()].find((t) => t.kind === "STRUCT" && t.name === "pscope_drop");
  expect(s?.size).toBe(DROP_LAYOUT.size);
  const fields: Record<string, { offset: number; size: number }> = {};
  for (const m of s?.members ?? []) {
    fields[m.name] = { offset: m.bits_offset / 8, size: sizeOf(m.type_id) };
  }
  expect(fields).toEqual({ ...DROP_LAYOUT.fields });
  expect(DROP_LAYOUT.fields.data.offset).toBe(DROP_FIXED_SIZE);
});

test.each(Object.entries(DROP_RODATA))(
  "wire drop - .rodata global %s sits where the loader writes it",
  (name, layout) => {
    const line = symbols.split("\n").find((l) => l.trim().split(/\s+/).at(-1) === name);
    const cols = line?.trim().split(/\s+/) ?? [];
    expect(Number.parseInt(cols[1] ?? "x", 16)).toBe(layout.offset);
    expect(Number(cols[2])).toBe(layout.size);
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
  try {
    decodeDropRecord(mangle(encodeDropRecord(base)));
    throw new Error("decoded");
  } catch (err) {
    expect(err).toBeInstanceOf(MalformedRecordError);
    expect((err as MalformedRecordError).reason).toBe(reason as MalformedRecordError["reason"]);
  }
});
