import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { KernelSymbols } from "./index.ts";
import { isRoot } from "./test-helpers.ts";

test("bpf kallsyms - names an address by the text symbol at or below it", () => {
  const syms = KernelSymbols.load(
    [
      "ffffffff81000200 T tcp_v4_rcv",
      "ffffffff81000100 t __udp4_lib_rcv",
      "ffffffff81000180 D some_data",
      "0000000000000000 T zeroed",
      "ffffffffc0000000 t mod_func\t[nf_tables]",
      "",
    ].join("\n"),
  );
  expect(syms.size).toBe(3);
  expect(syms.resolve(0xffffffff81000100n)).toBe("__udp4_lib_rcv+0x0");
  expect(syms.resolve(0xffffffff810001f0n)).toBe("__udp4_lib_rcv+0xf0");
  expect(syms.resolve(0xffffffff8100022an)).toBe("tcp_v4_rcv+0x2a");
  expect(syms.resolve(0xffffffffc0000010n)).toBe("mod_func+0x10");
  expect(syms.resolve(0xffffffff81000000n)).toBeUndefined();
});

test.skipIf(!isRoot)("bpf kallsyms - the running kernel's listing names its own symbols", () => {
  const syms = KernelSymbols.load();
  expect(syms.size).toBeGreaterThan(1000);
  const text = readFileSync("/proc/kallsyms", "utf8");
  const line = text.split("\n").find((l) => / [tT] tcp_v4_rcv$/.test(l));
  expect(line).toBeDefined();
  const addr = BigInt(`0x${line?.split(" ")[0]}`);
  expect(syms.resolve(addr + 4n)).toBe("tcp_v4_rcv+0x4");
});
