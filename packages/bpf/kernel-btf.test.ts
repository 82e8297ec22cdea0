import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { kernelDropReasons } from "./index.ts";
import { isRoot } from "./test-helpers.ts";

const vmlinuxH = join(import.meta.dir, "..", "..", "bpf", "build", "vmlinux.h");

test.skipIf(!isRoot || !existsSync(vmlinuxH))(
  "bpf btf - drop reasons read through libbpf equal the enum in vmlinux.h",
  () => {
    const text = readFileSync(vmlinuxH, "utf8");
    const body = /enum skb_drop_reason \{([^}]*)\}/.exec(text)?.[1] ?? "";
    const want = new Map<number, string>();
    for (const m of body.matchAll(/SKB_(?:DROP_REASON_)?(\w+) = (\d+),/g)) {
      const [, name, value] = m;
      if (name && value && name !== "MAX" && name !== "SUBSYS_MASK") want.set(Number(value), name);
    }
    const got = kernelDropReasons();
    expect(want.size).toBeGreaterThan(50);
    expect(got).toEqual(want);
    expect([...got.values()]).toContain("NO_SOCKET");
    expect(got.get(0)).toBe("NOT_DROPPED_YET");
  },
);
