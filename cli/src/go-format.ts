/** Numbers and durations printed the way hubble's Go code prints them. */

/** Go's time.Duration.String for nanoseconds: `1h2m3.5s`, `3m0s`, `150ms`, `0s`. */
export function goDuration(ns: bigint): string {
  if (ns === 0n) return "0s";
  const neg = ns < 0n;
  let u = neg ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    const [unit, div] =
      u < 1_000n
        ? (["ns", 1n] as const)
        : u < 1_000_000n
          ? (["µs", 1_000n] as const)
          : (["ms", 1_000_000n] as const);
    out = `${fraction(u, div)}${unit}`;
  } else {
    const h = u / 3_600_000_000_000n;
    u -= h * 3_600_000_000_000n;
    const m = u / 60_000_000_000n;
    u -= m * 60_000_000_000n;
    out = `${h > 0n ? `${h}h` : ""}${h > 0n || m > 0n ? `${m}m` : ""}${fraction(u, 1_000_000_000n)}s`;
  }
  return neg ? `-${out}` : out;
}

/** `n / div` with the remainder as a decimal fraction, trailing zeros dropped. */
function fraction(n: bigint, div: bigint): string {
  const whole = n / div;
  const rest = n % div;
  if (rest === 0n) return String(whole);
  const digits = String(div).length - 1;
  return `${whole}.${String(rest).padStart(digits, "0").replace(/0+$/, "")}`;
}

/** hubble's uint64Grouping: `1234567` → `1,234,567`. */
export function grouped(n: bigint | number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/**
 * Go's tabwriter as hubble configures it (minimum width 2, padding 3, spaces): every cell
 * but the last of a line is padded to its column's widest cell + 3.
 */
export function tabAlign(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows)
    for (let i = 0; i < row.length - 1; i++)
      widths[i] = Math.max(widths[i] ?? 0, [...(row[i] ?? "")].length);
  return rows
    .map((row) =>
      row
        .map((c, i) =>
          i === row.length - 1
            ? c
            : c + " ".repeat(Math.max((widths[i] ?? 0) + 3, 2) - [...c].length),
        )
        .join(""),
    )
    .join("\n");
}
