import { beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runOk } from "@periscope/testing";
import {
  CAPTURE_RULE_LAYOUT,
  CT_ENTRY_LAYOUT,
  CT_KEY_LAYOUT,
  type FieldLayout,
  HDR_LAYOUT,
  HEADER_CONSTANTS,
  SETTINGS_LAYOUT,
  type StructLayout,
  TRACE_CONFIG_LAYOUT,
  TRACE_LAYOUT,
} from "./index.ts";

const repoRoot = join(import.meta.dir, "..", "..");
const objectPath = join(repoRoot, "bpf", "build", "trace.bpf.o");
const headerPath = join(repoRoot, "bpf", "include", "periscope.h");

interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
}
interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: BtfMember[];
  vars?: { type_id: number; offset: number; size: number }[];
}

let types = new Map<number, BtfType>();

/** Size in bytes of a BTF type, following typedefs and qualifiers. */
function sizeOf(id: number): number {
  const t = types.get(id);
  if (!t) throw new Error(`BTF type ${id} missing`);
  switch (t.kind) {
    case "INT":
    case "STRUCT":
    case "UNION":
    case "ENUM":
      return t.size ?? 0;
    case "ARRAY":
      return (t.nr_elems ?? 0) * sizeOf(t.type_id ?? 0);
    case "TYPEDEF":
    case "CONST":
    case "VOLATILE":
      return sizeOf(t.type_id ?? 0);
    default:
      throw new Error(`unexpected BTF kind ${t.kind} for type ${id}`);
  }
}

function struct(name: string): BtfType {
  const found = [...types.values()].find((t) => t.kind === "STRUCT" && t.name === name);
  if (!found) throw new Error(`struct ${name} not in the BTF of ${objectPath}`);
  return found;
}

function btfFields(name: string): Record<string, FieldLayout> {
  const out: Record<string, FieldLayout> = {};
  for (const m of struct(name).members ?? []) {
    out[m.name] = { offset: m.bits_offset / 8, size: sizeOf(m.type_id) };
  }
  return out;
}

beforeAll(async () => {
  if (!existsSync(objectPath)) await runOk(["bash", join(repoRoot, "scripts", "build-bpf.sh")]);
  const json = JSON.parse(
    await runOk(["bpftool", "-j", "btf", "dump", "file", objectPath, "format", "raw"]),
  );
  types = new Map((json.types as BtfType[]).map((t) => [t.id, t]));
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
  expect(struct(name).size).toBe(layout.size);
  expect(layout.fields).toEqual(btfFields(name));
});

test("wire layout - trace fixed part ends where data begins", () => {
  expect(TRACE_LAYOUT.fixedSize).toBe(TRACE_LAYOUT.fields.data.offset);
  expect(TRACE_LAYOUT.fields.hdr.size).toBe(HDR_LAYOUT.size);
});

test("wire layout - cfg is the only .rodata variable, at offset 0", () => {
  const rodata = [...types.values()].find((t) => t.kind === "DATASEC" && t.name === ".rodata");
  expect(rodata?.vars?.length).toBe(1);
  const v = rodata?.vars?.[0];
  expect(v?.offset).toBe(0);
  expect(v?.size).toBe(TRACE_CONFIG_LAYOUT.size);
  expect(types.get(v?.type_id ?? -1)?.name).toBe("cfg");
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
