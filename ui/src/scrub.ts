/**
 * The scrubber's math (pure): a range input over the history the observer holds, from the
 * oldest flow to now, in whole seconds; its value is the window's end.
 */
import type { ViewQuery } from "./url.ts";

/** Window length when scrubbing away from the live view, ms. */
export const DEFAULT_SPAN_MS = 5 * 60_000;
/** The range when the oldest flow is not known yet: the last hour. */
const FALLBACK_RANGE_MS = 60 * 60_000;

/** The range input's bounds and value, seconds since the epoch. */
export interface ScrubRange {
  readonly min: number;
  readonly max: number;
  readonly value: number;
}

/** Bounds from the oldest flow (or an hour back) to now; the value is the window's end. */
export function scrubRange(q: ViewQuery, oldestMs: number | undefined, nowMs: number): ScrubRange {
  const max = Math.ceil(nowMs / 1000);
  const min = Math.min(
    max - 1,
    Math.floor((oldestMs !== undefined ? oldestMs : nowMs - FALLBACK_RANGE_MS) / 1000),
  );
  const end = q.since === undefined ? nowMs : (q.until ?? nowMs);
  return { min, max, value: Math.max(min, Math.min(max, Math.round(end / 1000))) };
}

/** The window length the scrubber keeps: the current window's, else {@link DEFAULT_SPAN_MS}. */
export function windowSpan(q: ViewQuery, nowMs: number): number {
  if (q.since === undefined) return DEFAULT_SPAN_MS;
  return Math.max(1000, (q.until ?? nowMs) - q.since);
}

/** The query for the scrubber at `valueSec`: a window of the same length ending there. */
export function scrubTo(q: ViewQuery, valueSec: number, nowMs: number): ViewQuery {
  const until = valueSec * 1000;
  return { filter: q.filter, since: until - windowSpan(q, nowMs), until };
}
