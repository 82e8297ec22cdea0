import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TC_HOOK, TC_OPTS, TEST_RUN_OPTS } from "./structs.ts";

const dir = mkdtempSync(join(tmpdir(), "psc-structs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** sizeof/offsetof of the libbpf option structs, as the installed headers define them. */
function cLayouts(): Record<string, Record<string, number>> {
  const fields: Record<string, Record<string, string>> = {
    bpf_tc_hook: { sz: "sz", ifindex: "ifindex", attachPoint: "attach_point", parent: "parent" },
    bpf_tc_opts: {
      sz: "sz",
      progFd: "prog_fd",
      flags: "flags",
      progId: "prog_id",
      handle: "handle",
      priority: "priority",
    },
    bpf_test_run_opts: Object.fromEntries(
      Object.keys(TEST_RUN_OPTS)
        .filter((k) => k !== "size")
        .map((k) => [k, k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)]),
    ),
  };
  const lines = Object.entries(fields).flatMap(([struct, members]) => [
    `printf("\\"${struct}\\":{\\"size\\":%zu", sizeof(struct ${struct}));`,
    ...Object.entries(members).map(
      ([ts, c]) => `printf(",\\"${ts}\\":%zu", offsetof(struct ${struct}, ${c}));`,
    ),
    `printf("}%s", "${struct === "bpf_test_run_opts" ? "" : ","}");`,
  ]);
  const src = `#include <stddef.h>\n#include <stdio.h>\n#include <bpf/libbpf.h>\n#include <bpf/bpf.h>\nint main(void) {\nprintf("{");\n${lines.join("\n")}\nprintf("}\\n");\nreturn 0;\n}\n`;
  writeFileSync(join(dir, "layout.c"), src);
  const cc = Bun.spawnSync(["clang", "-o", join(dir, "layout"), join(dir, "layout.c")], {
    stderr: "pipe",
  });
  if (cc.exitCode !== 0) throw new Error(`clang failed: ${cc.stderr.toString()}`);
  const out = Bun.spawnSync([join(dir, "layout")], { stdout: "pipe" });
  return JSON.parse(out.stdout.toString());
}

const layouts = cLayouts();

test.each<[string, Readonly<Record<string, number>>]>([
  ["bpf_tc_hook", TC_HOOK],
  ["bpf_tc_opts", TC_OPTS],
  ["bpf_test_run_opts", TEST_RUN_OPTS],
])("bpf structs - %s matches the installed libbpf headers", (name, layout) => {
  expect({ ...layout }).toEqual(layouts[name] ?? {});
});
