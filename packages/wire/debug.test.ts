import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runOk } from "@periscope/testing";
import {
  DEBUG_LAYOUT,
  DEBUG_SIZE,
  decodeDebugRecord,
  encodeDebugRecord,
  MalformedRecordError,
} from "./index.ts";

const repoRoot = join(import.meta.dir, "..", "..");
const buildDir = join(repoRoot, "bpf", "build");
let dir = "";
let members: Record<string, { offset: number; size: number }> = {};
let structSize = 0;

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

// The trace object need not use pscope_debug, so a one-line object that does is
// compiled from the header here and its BTF compared with DEBUG_LAYOUT.
beforeAll(async () => {
  if (!existsSync(join(buildDir, "vmlinux.h"))) {
    await runOk(["bash", join(repoRoot, "scripts", "build-bpf.sh")]);
  }
  dir = mkdtempSync(join(tmpdir(), "pscope-debug-btf-"));
  const src = join(dir, "debug.bpf.c");
  writeFileSync(
    src,
    '#include "vmlinux.h"\n#include "periscope.h"\nstruct pscope_debug debug_record __attribute__((used));\n',
  );
  const clang = (await runOk(["bash", "-c", "command -v clang-14 || command -v clang"])).trim();
  const obj = join(dir, "debug.bpf.o");
  await runOk([
    clang,
    "-g",
    "-O2",
    "-target",
    "bpf",
    `-I${buildDir}`,
    `-I${join(repoRoot, "bpf", "include")}`,
    "-c",
    src,
    "-o",
    obj,
  ]);
  const json = JSON.parse(
    await runOk(["bpftool", "-j", "btf", "dump", "file", obj, "format", "raw"]),
  );
  const types = new Map((json.types as BtfType[]).map((t) => [t.id, t]));
  const sizeOf = (id: number): number => {
    const t = types.get(id);
    if (!t) throw new Error(`BTF type ${id} missing`);
    if (t.kind === "ARRAY") return (t.nr_elems ?? 0) * sizeOf(t.type_id ?? 0);
    if (t.kind === "TYPEDEF" || t.kind === "CONST" || t.kind === "VOLATILE") {
      return sizeOf(t.type_id ?? 0);
    }
    return t.size ?? 0;
  };
  const s = [...types.values()].find((t) => t.kind === "STRUCT" && t.name === "pscope_debug");
  if (!s) throw new Error("struct pscope_debug not in the BTF");
  structSize = s.size ?? 0;
  for (const m of s.members ?? []) {
    members[m.name] = { offset: m.bits_offset / 8, size: sizeOf(m.type_id) };
  }
});
afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
  members = {};
});

test("wire debug - layout matches the BTF of struct pscope_debug", () => {
  expect(structSize).toBe(DEBUG_SIZE);
  expect(members).toEqual({ ...DEBUG_LAYOUT.fields });
});

const sample = {
  subtype: 9,
  cpu: 1,
  tsBootNs: 123_456_789n,
  ifindex: 7,
  flowHash: 0xdeadbeef,
  arg1: 1,
  arg2: 2,
  arg3: 0xffffffff,
  netnsCookie: 4097n,
};

test("wire debug - encode then decode returns every field", () => {
  const bytes = encodeDebugRecord(sample);
  expect(bytes.length).toBe(DEBUG_SIZE);
  expect(decodeDebugRecord(bytes)).toEqual({ ...sample, version: 1, flags: 0 });
});

test.each<[string, Uint8Array, string]>([
  ["too short", encodeDebugRecord(sample).subarray(0, 40), "too_short"],
  ["trailing bytes", new Uint8Array([...encodeDebugRecord(sample), 0]), "trailing_bytes"],
  ["bad version", encodeDebugRecord({ ...sample, version: 9 }), "bad_version"],
  ["wrong type", new Uint8Array(DEBUG_SIZE).fill(4, 0, 1), "wrong_type"],
])("wire debug - %s is refused", (_name, bytes, reason) => {
  let err: unknown;
  try {
    decodeDebugRecord(bytes);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(MalformedRecordError);
  expect((err as MalformedRecordError).reason).toBe(reason as MalformedRecordError["reason"]);
});
