/** Paced load: runs the trace program with BPF_PROG_TEST_RUN over a packet mix at a set rate. */

import type { TraceProgram } from "@periscope/bpf";
import type { MixEntry } from "./mix.ts";
import { yieldToLoop } from "./report.ts";

/** Events per second, or "max": as fast as the kernel and the event loop allow. */
export type LoadRate = number | "max";

/** What one {@link driveLoad} call produced. */
export interface LoadResult {
  /** Records the program emitted (sum of test_run repetitions). */
  produced: number;
  /** Wall time from the first to the end of the last test_run call, ms. */
  wallMs: number;
  /** test_run calls made. */
  calls: number;
}

/** Events per test_run turn at "max" before yielding to the event loop (collector drain). */
const MAX_TURN_EVENTS = 1024;

/**
 * Cycles through `mix` for `durationMs`, each entry a burst of up to `burst` repetitions
 * of its packet in one test_run call, keeping the count of emitted records at
 * `rate × elapsed`. Between turns it yields to the event loop so an in-process collector
 * drains; paced rates sleep 1 ms between turns, "max" only yields.
 */
export async function driveLoad(
  program: TraceProgram,
  mix: readonly MixEntry[],
  rate: LoadRate,
  durationMs: number,
): Promise<LoadResult> {
  let produced = 0;
  let calls = 0;
  let next = 0;
  const start = performance.now();
  let now = start;
  while (now - start < durationMs) {
    const target =
      rate === "max" ? produced + MAX_TURN_EVENTS : Math.floor((rate * (now - start)) / 1000);
    while (produced < target) {
      const entry = mix[next++ % mix.length];
      if (entry === undefined) throw new RangeError("empty packet mix");
      const n = Math.min(entry.burst, target - produced);
      program.testRun(entry.packet, n, entry.direction);
      produced += n;
      calls++;
    }
    if (rate === "max") await yieldToLoop();
    else await Bun.sleep(1);
    now = performance.now();
  }
  return { produced, wallMs: performance.now() - start, calls };
}
