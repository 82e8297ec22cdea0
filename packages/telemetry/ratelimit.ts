import type { Logger } from "./logger.ts";

/** Options for {@link RateLimitedLog}. */
export interface RateLimitedLogOptions {
  log: Logger;
  /** Says what happened `count` times, e.g. `(n) => \`dropped ${n} malformed batches\``. */
  describe: (count: number) => string;
  /** At most one line per this many ms after the first; default 10 000. */
  intervalMs?: number;
  /** pino level of the lines; default `warn`. */
  level?: "error" | "warn" | "info";
  /** Clock in ms; tests pass their own. */
  now?: () => number;
}

/**
 * A log line for expected, repeated bad input (malformed frames, garbage on a subject)
 * that cannot flood the log: the first occurrence is logged at once, later ones within
 * the interval are only counted, and one summary line per interval tells how many there
 * were and the last reason ("dropped 41 malformed batches in the last 10s: <reason>").
 * Lines carry a reason string and plain fields, never an `err` object, so no stack trace
 * is printed for input that is merely bad.
 */
export class RateLimitedLog {
  readonly #log: Logger;
  readonly #describe: (count: number) => string;
  readonly #intervalMs: number;
  readonly #level: "error" | "warn" | "info";
  readonly #now: () => number;
  /** When the last line was written; -Infinity before the first. */
  #lastLineMs = Number.NEGATIVE_INFINITY;
  #pending = 0;
  #lastReason = "";
  #lastFields: Record<string, unknown> = {};
  #timer: ReturnType<typeof setTimeout> | undefined;
  #total = 0;

  constructor(opts: RateLimitedLogOptions) {
    this.#log = opts.log;
    this.#describe = opts.describe;
    this.#intervalMs = opts.intervalMs ?? 10_000;
    this.#level = opts.level ?? "warn";
    this.#now = opts.now ?? Date.now;
  }

  /** Occurrences noted since creation (logged or summarised). */
  get total(): number {
    return this.#total;
  }

  /** Occurrences noted but not written yet (they go into the next summary). */
  get pending(): number {
    return this.#pending;
  }

  /** Notes `count` occurrences (default 1) with what was wrong and context fields (no `err`). */
  note(reason: string, fields: Record<string, unknown> = {}, count = 1): void {
    this.#total += count;
    const now = this.#now();
    if (this.#pending === 0 && now - this.#lastLineMs >= this.#intervalMs) {
      this.#write(count, reason, fields, undefined);
      return;
    }
    this.#pending += count;
    this.#lastReason = reason;
    this.#lastFields = fields;
    if (this.#timer === undefined) {
      const wait = Math.max(0, this.#lastLineMs + this.#intervalMs - now);
      this.#timer = setTimeout(() => this.flush(), wait);
      this.#timer.unref?.();
    }
  }

  /** Writes the summary of pending occurrences now (no-op without any); call on shutdown. */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending === 0) return;
    const count = this.#pending;
    const windowMs = Math.min(this.#intervalMs, this.#now() - this.#lastLineMs);
    this.#pending = 0;
    this.#write(count, this.#lastReason, this.#lastFields, windowMs);
  }

  #write(
    count: number,
    reason: string,
    fields: Record<string, unknown>,
    windowMs: number | undefined,
  ): void {
    this.#lastLineMs = this.#now();
    const what = this.#describe(count);
    if (windowMs === undefined) {
      this.#log[this.#level]({ ...fields, count, reason }, `${what}: ${reason}`);
      return;
    }
    const secs = Math.max(1, Math.round(windowMs / 1000));
    this.#log[this.#level](
      { ...fields, count, windowMs, reason },
      `${what} in the last ${secs}s: ${reason}`,
    );
  }
}

/**
 * The message of `err` followed by those of its causes ("a: b: c"), without stacks: the
 * reason to log for bad input.
 */
export function errorReason(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 8; depth++) {
    const msg = cur instanceof Error ? cur.message : String(cur);
    if (msg !== "" && !parts.at(-1)?.endsWith(msg)) parts.push(msg);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(": ");
}
