import { beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  CAPTURE_RULE_LAYOUT,
  CT_ENTRY_LAYOUT,
  CT_KEY_LAYOUT,
  HDR_LAYOUT,
  HEADER_CONSTANTS,
  SETTINGS_LAYOUT,
  type StructLayout,
  TRACE_CONFIG_LAYOUT,
  TRACE_LAYOUT,
} from "./index.ts";
import {
  type BtfStructs,
  bpfBuildDir,
  expectMatchesBtf,
  loadBtfStructs,
  repoRoot,
} from "./test-helpers.ts";

const objectPath = join(bpfBuildDir, "trace.bpf.o");
const headerPath = join(repoRoot, "bpf", "include", "periscope.h");

let btf: BtfStructs;

beforeAll(async () => {
  btf = await loadBtfStructs(objectPath);
});

test.each<[string, StructLayout]>([
  ["pscope_hdr", HDR_LAYOUT],
  ["pscope_trace", TRACE_LAYOUT],
  ["pscope_trace_config", TRACE_CONFIG_LAYOUT],
  ["pscope_capture_rule", CAPTURE_RULE_LAYOUT],
  ["pscope_settings", SETTINGS_LAYOUT],
  ["pscope_ct_key", CT_KEY_LAYOUT],
  ["pscope_ct_entry", CT_ENTRY_LAYOUT],
])("wire layout - %s offsets and sizes match the BTF", (name, layout) => {
  expectMatchesBtf(btf, name, layout);
});

test("wire layout - trace fixed part ends where data begins", () => {
  expect(TRACE_LAYOUT.fixedSize).toBe(TRACE_LAYOUT.fields.data.offset);
  expect(TRACE_LAYOUT.fields.hdr.size).toBe(HDR_LAYOUT.size);
});

test("wire layout - cfg is the only .rodata variable, at offset 0", () => {
  expect(btf.datasec(".rodata")).toEqual([
    { name: "cfg", offset: 0, size: TRACE_CONFIG_LAYOUT.size },
  ]);
});

test("wire layout - every #define in periscope.h matches its TS constant", () => {
  const header = readFileSync(headerPath, "utf8");
  const defines: Record<string, number> = {};
  for (const m of header.matchAll(/^#define\s+(PSCOPE_\w+)\s+(0x[0-9a-fA-F]+|\d+)\b/gm)) {
    const [, name, value] = m;
    if (name && value) defines[name] = Number(value);
  }
  expect(Object.keys(defines).length).toBeGreaterThan(0);
  expect(HEADER_CONSTANTS).toEqual(defines);
});
