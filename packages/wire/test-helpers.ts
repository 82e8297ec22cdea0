/**
 * Shared pieces of the wire tests: struct layouts read from the BTF of a
 * compiled BPF object, and the error a decoder throws for malformed bytes.
 */
import { expect } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runOk } from "@periscope/testing";
import type { FieldLayout, StructLayout } from "./layout.ts";
import { MalformedRecordError } from "./record.ts";

/** Root of the repository. */
export const repoRoot = join(import.meta.dir, "..", "..");
/** Where scripts/build-bpf.sh puts the objects and vmlinux.h. */
export const bpfBuildDir = join(repoRoot, "bpf", "build");

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  vars?: { type_id: number; offset: number; size: number }[];
}

/** A struct as the BTF describes it: `sizeof` and members by C name. */
export interface BtfStruct {
  readonly size: number;
  readonly fields: Record<string, FieldLayout>;
}

/** The structs of one object's BTF. */
export interface BtfStructs {
  /** @throws Error when the object has no struct called `name`. */
  struct(name: string): BtfStruct;
  /** Variables of a data section (e.g. ".rodata"), empty when there is none. */
  datasec(name: string): { name: string; offset: number; size: number }[];
}

/** Builds the BPF objects when `path` (an object or vmlinux.h in the build dir) is missing. */
export async function ensureBpfBuilt(path: string): Promise<void> {
  if (!existsSync(path)) await runOk(["bash", join(repoRoot, "scripts", "build-bpf.sh")]);
}

/** Reads the BTF of `objectPath` with bpftool (building the objects first if needed). */
export async function loadBtfStructs(objectPath: string): Promise<BtfStructs> {
  await ensureBpfBuilt(objectPath);
  const json = JSON.parse(
    await runOk(["bpftool", "-j", "btf", "dump", "file", objectPath, "format", "raw"]),
  );
  const types = new Map((json.types as BtfType[]).map((t) => [t.id, t]));
  const sizeOf = (id: number): number => {
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
  };
  return {
    struct(name) {
      const s = [...types.values()].find((t) => t.kind === "STRUCT" && t.name === name);
      if (!s) throw new Error(`struct ${name} not in the BTF of ${objectPath}`);
      const fields: Record<string, FieldLayout> = {};
      for (const m of s.members ?? []) {
        fields[m.name] = { offset: m.bits_offset / 8, size: sizeOf(m.type_id) };
      }
      return { size: s.size ?? 0, fields };
    },
    datasec(name) {
      const sec = [...types.values()].find((t) => t.kind === "DATASEC" && t.name === name);
      return (sec?.vars ?? []).map((v) => ({
        name: types.get(v.type_id)?.name ?? "",
        offset: v.offset,
        size: v.size,
      }));
    },
  };
}

/** A symbol of an object's ELF symbol table: its value (section offset) and size in bytes. */
export interface ElfSymbol {
  readonly value: number;
  readonly size: number;
}

/** The ELF symbol table of `objectPath` (`readelf -sW`), by symbol name. */
export async function readElfSymbols(objectPath: string): Promise<Map<string, ElfSymbol>> {
  const out = new Map<string, ElfSymbol>();
  for (const line of (await runOk(["readelf", "-sW", objectPath])).split("\n")) {
    const cols = line.trim().split(/\s+/);
    const name = cols.at(-1);
    if (cols.length < 8 || name === undefined || !/^\d+:$/.test(cols[0] ?? "")) continue;
    out.set(name, {
      value: Number.parseInt(cols[1] ?? "x", 16),
      size: Number(cols[2]),
    });
  }
  return out;
}

/** Expects `layout` to have the size and exactly the fields of BTF struct `name`. */
export function expectMatchesBtf(btf: BtfStructs, name: string, layout: StructLayout): void {
  const s = btf.struct(name);
  expect(s.size).toBe(layout.size);
  expect({ ...layout.fields }).toEqual(s.fields);
}

/**
 * Runs `decode` and returns the MalformedRecordError it throws; the test fails
 * when it throws anything else or nothing.
 */
export function malformed(decode: () => unknown): MalformedRecordError {
  try {
    decode();
  } catch (err) {
    expect(err).toBeInstanceOf(MalformedRecordError);
    return err as MalformedRecordError;
  }
  throw new Error("decoded without error");
}
