/** Output and small measuring helpers shared by the benches. */

import { readFileSync } from "node:fs";
import { waitFor } from "@periscope/devstack";

/** Prints one figure as a JSON line: {"bench","metric","value","unit"}. */
export function emit(bench: string, metric: string, value: number, unit: string): void {
  const rounded = Number.isInteger(value) ? value : Math.round(value * 100) / 100;
  process.stdout.write(`${JSON.stringify({ bench, metric, value: rounded, unit })}\n`);
}

/** A wait in a bench that did not finish in time. */
export class BenchTimeoutError extends Error {
  override name = "BenchTimeoutError";
}

/** Yields to the event loop once (timers, I/O and other immediates run). */
export const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Polls `done()` every `intervalMs` (devstack's waitFor) until it holds; returns the ms
 * since `start` when it did. Throws WaitTimeoutError after `timeoutMs`.
 */
export async function until(
  what: string,
  start: number,
  done: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  intervalMs = 1,
): Promise<number> {
  await waitFor(done, { what, timeoutMs, intervalMs });
  return performance.now() - start;
}

/** Value at quantile `q` (0..1) of an ascending array, nearest rank; NaN when empty. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** CPU time (user + system, all threads) a process used so far, in ms; undefined once gone. */
export function processCpuMs(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    if (err instanceof Error && "code" in err && err.code === "ENOENT") return undefined;
    throw err;
  }
  // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / CLOCK_TICKS_PER_S;
}

/** Busy and total CPU time of the whole machine so far (all cores), in ms, from /proc/stat. */
export function machineCpuMs(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const t = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = t.reduce((a, b) => a + b, 0);
  const idle = (t[3] ?? 0) + (t[4] ?? 0);
  return {
    busy: ((total - idle) * 1000) / CLOCK_TICKS_PER_S,
    total: (total * 1000) / CLOCK_TICKS_PER_S,
  };
}

/** USER_HZ; 100 on every Linux architecture Bun runs on. */
const CLOCK_TICKS_PER_S = 100;

/** Reads Prometheus text exposition from `http://127.0.0.1:<port>/metrics`. */
export async function scrapeMetrics(port: number, timeoutMs = 10_000): Promise<PromSample[]> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`GET /metrics on port ${port}: HTTP ${res.status}`);
  const out: PromSample[] = [];
  for (const line of (await res.text()).split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? ([-+\d.eE]+|NaN)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)) labels[l[1] ?? ""] = l[2] ?? "";
    out.push({ name: m[1] ?? "", labels, value: Number(m[3]) });
  }
  return out;
}

/** One sample of a scraped metric. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Sum of the samples named `name` whose labels pass `match` (all of them by default). */
export function metricSum(
  samples: readonly PromSample[],
  name: string,
  match: (labels: Record<string, string>) => boolean = () => true,
): number {
  let sum = 0;
  for (const s of samples) if (s.name === name && match(s.labels)) sum += s.value;
  return sum;
}

/** Latency percentiles of a set of samples, in ms (NaN when there are none). */
export interface LatencySummary {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** A growable list of latencies in ms. */
export class LatencySamples {
  #buf = new Float64Array(1 << 12);
  #n = 0;

  push(ms: number): void {
    if (this.#n === this.#buf.length) {
      const bigger = new Float64Array(this.#buf.length * 2);
      bigger.set(this.#buf);
      this.#buf = bigger;
    }
    this.#buf[this.#n++] = ms;
  }

  summary(): LatencySummary {
    const sorted = this.#buf.slice(0, this.#n).sort();
    return {
      count: this.#n,
      min: quantile(sorted, 0),
      p50: quantile(sorted, 0.5),
      p90: quantile(sorted, 0.9),
      p99: quantile(sorted, 0.99),
      max: quantile(sorted, 1),
    };
  }
}
