import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runOk } from "@periscope/testing";
import {
  DEBUG_LAYOUT,
  DEBUG_SIZE,
  decodeDebugRecord,
  encodeDebugRecord,
  type MalformedReason,
} from "./index.ts";
import {
  type BtfStruct,
  bpfBuildDir,
  ensureBpfBuilt,
  loadBtfStructs,
  malformed,
  repoRoot,
} from "./test-helpers.ts";

let dir = "";
let debugStruct: BtfStruct | undefined;

// The trace object need not use pscope_debug, so a one-line object that does is
// compiled from the header here and its BTF compared with DEBUG_LAYOUT.
beforeAll(async () => {
  await ensureBpfBuilt(join(bpfBuildDir, "vmlinux.h"));
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
    `-I${bpfBuildDir}`,
    `-I${join(repoRoot, "bpf", "include")}`,
    "-c",
    src,
    "-o",
    obj,
  ]);
  debugStruct = (await loadBtfStructs(obj)).struct("pscope_debug");
});
afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

test("wire debug - layout matches the BTF of struct pscope_debug", () => {
  expect(debugStruct?.size).toBe(DEBUG_SIZE);
  expect(debugStruct?.fields).toEqual({ ...DEBUG_LAYOUT.fields });
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
  const err = malformed(() => decodeDebugRecord(bytes));
  expect(err.reason).toBe(reason as MalformedReason);
});
