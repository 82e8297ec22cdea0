import { readFileSync } from "node:fs";

/** Where the running kernel lists its symbols. */
export const KALLSYMS = "/proc/kallsyms";

/**
 * The running kernel's text symbols (`/proc/kallsyms`, types t/T/w/W), sorted by address,
 * to name kernel text addresses such as a drop record's `location`. Needs root (with
 * kptr_restrict the file shows zeros, and then nothing resolves).
 */
export class KernelSymbols {
  readonly #addrs: BigUint64Array;
  readonly #names: string[];

  private constructor(addrs: BigUint64Array, names: string[]) {
    this.#addrs = addrs;
    this.#names = names;
  }

  /** Parses a kallsyms listing (the file's text; defaults to reading {@link KALLSYMS}). */
  static load(text: string = readFileSync(KALLSYMS, "utf8")): KernelSymbols {
    const entries: [bigint, string][] = [];
    for (const line of text.split("\n")) {
      const [addr, type, name] = line.split(/\s+/, 3);
      if (addr === undefined || name === undefined || !/^[tTwW]$/.test(type ?? "")) continue;
      const a = BigInt(`0x${addr}`);
      if (a !== 0n) entries.push([a, name]);
    }
    entries.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    return new KernelSymbols(
      BigUint64Array.from(entries.map((e) => e[0])),
      entries.map((e) => e[1]),
    );
  }

  /** Symbols known. */
  get size(): number {
    return this.#names.length;
  }

  /**
   * `name+0xoffset` of the symbol at or below `addr`, undefined below the first symbol
   * (or when the listing was empty or zeroed).
   */
  resolve(addr: bigint): string | undefined {
    let lo = 0;
    let hi = this.#addrs.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.#addrs[mid] ?? 0n) <= addr) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (found < 0) return undefined;
    const off = addr - (this.#addrs[found] ?? 0n);
    return `${this.#names[found]}+0x${off.toString(16)}`;
  }
}
