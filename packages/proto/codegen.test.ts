import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";

// Checks that proto/ passes `buf lint` and that the committed generated code
// is exactly what buf.gen.yaml produces today (no hand edits, no stale files).

const root = resolve(import.meta.dir, "../..");
const buf = join(root, "node_modules/.bin/buf");
const committed = join(root, "packages/proto/src/gen");
const scratch = mkdtempSync(join(tmpdir(), "psct-proto-"));

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

function runBuf(args: string[]): { code: number; output: string } {
  const result = Bun.spawnSync([buf, ...args], { cwd: root, stdout: "pipe", stderr: "pipe" });
  return {
    code: result.exitCode,
    output: `${result.stdout.toString()}${result.stderr.toString()}`,
  };
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

test("proto codegen - buf lint passes", () => {
  const { code, output } = runBuf(["lint"]);
  expect(output).toBe("");
  expect(code).toBe(0);
});

test("proto codegen - committed src/gen matches a fresh buf generate", () => {
  // -o prefixes the template's out dir, so the same buf.gen.yaml is used.
  const { code, output } = runBuf(["generate", "-o", scratch]);
  expect(output).toBe("");
  expect(code).toBe(0);
  const fresh = join(scratch, "packages/proto/src/gen");

  const freshFiles = listFiles(fresh);
  const committedFiles = listFiles(committed);
  const differing = [...new Set([...freshFiles, ...committedFiles])]
    .filter((file) => {
      if (!freshFiles.includes(file) || !committedFiles.includes(file)) return true;
      return !readFileSync(join(fresh, file)).equals(readFileSync(join(committed, file)));
    })
    .sort();

  // Run `bun run gen` (scripts/gen-proto.sh) to fix a failure here.
  expect(differing).toEqual([]);
  expect(freshFiles.length).toBeGreaterThan(0);
});
