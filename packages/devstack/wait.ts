import { WaitAbortedError, WaitTimeoutError } from "./errors.ts";

/** Options for {@link waitFor}. */
export interface WaitOptions {
  /** Give up after this many ms (default 10000). */
  timeoutMs?: number;
  /** Pause between checks, ms (default 50). */
  intervalMs?: number;
  /** Named in the timeout error, e.g. "observer /readyz". */
  what?: string;
}

/**
 * Polls until `check` holds: a URL answers with a 2xx status, or a predicate returns true.
 * A predicate that throws counts as "not yet" (its last error becomes the timeout's cause),
 * except for {@link WaitAbortedError}, which ends the wait at once.
 * Throws {@link WaitTimeoutError} at the deadline.
 */
export async function waitFor(
  check: string | (() => boolean | Promise<boolean>),
  opts: WaitOptions = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  const what = opts.what ?? (typeof check === "string" ? check : "condition");
  const probe =
    typeof check === "string"
      ? async () => (await fetch(check, { signal: AbortSignal.timeout(2000) })).ok
      : check;
  let lastError: unknown;
  for (;;) {
    try {
      if (await probe()) return;
    } catch (err) {
      if (err instanceof WaitAbortedError) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      throw new WaitTimeoutError(`${what} did not hold within ${timeoutMs} ms`, {
        cause: lastError,
      });
    }
    await Bun.sleep(opts.intervalMs ?? 50);
  }
}

/**
 * Polls `check` until it returns something other than undefined and returns that value
 * (the first flow matching a query, a port that opened, ...). Same rules as
 * {@link waitFor}: a throwing check counts as "not yet"; {@link WaitTimeoutError} at the deadline.
 */
export async function waitForValue<T>(
  check: () => T | undefined | Promise<T | undefined>,
  opts: WaitOptions = {},
): Promise<T> {
  let found: { value: T } | undefined;
  await waitFor(async () => {
    const value = await check();
    if (value !== undefined) found = { value };
    return found !== undefined;
  }, opts);
  if (found === undefined) throw new WaitTimeoutError(`${opts.what ?? "value"} never arrived`);
  return found.value;
}
