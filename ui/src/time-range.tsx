/**
 * From/to pickers, the scrubber over the history the observer holds, and Live. Every
 * change that picks a window goes to `onChange` (the page puts it in the URL and asks the
 * worker for it): from/to on change (or Show), the scrubber while dragged (debounced) and
 * on release.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { scrubRange, scrubTo } from "./scrub.ts";
import type { ViewQuery } from "./url.ts";

/** Scrubber drags apply after this long without movement, ms. */
const DRAG_SETTLE_MS = 250;

/** Local `datetime-local` value of epoch ms. */
export function toLocalInput(ms: number | undefined): string {
  if (ms === undefined) return "";
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 19);
}

/** "HH:MM:SS" local time of epoch ms. */
const clock = (ms: number): string => toLocalInput(ms).slice(11);

/** The time range form. */
export function TimeRange(props: {
  query: ViewQuery;
  oldestMs: number | undefined;
  onChange: (q: ViewQuery) => void;
}) {
  const { query, onChange } = props;
  const [from, setFrom] = useState(toLocalInput(query.since));
  const [to, setTo] = useState(toLocalInput(query.until));
  const [dragSec, setDragSec] = useState<number | undefined>();
  const settle = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => {
    setFrom(toLocalInput(query.since));
    setTo(toLocalInput(query.until));
  }, [query]);
  useEffect(() => () => clearTimeout(settle.current), []);
  // The scrubber ends at now: redrawn every second, also when no flow or status arrives.
  const [, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, []);
  const now = Date.now();
  const range = scrubRange(query, props.oldestMs, now);

  /** Applies the from/to inputs' values (from empty: live). */
  const applyInputs = (f: string, t: string): void => {
    const since = f ? new Date(f).getTime() : undefined;
    const until = t ? new Date(t).getTime() : undefined;
    if (since === undefined || Number.isNaN(since)) onChange({ filter: query.filter });
    else
      onChange({
        filter: query.filter,
        since,
        ...(until !== undefined && !Number.isNaN(until) ? { until } : {}),
      });
  };
  const scrub = (sec: number): void => {
    clearTimeout(settle.current);
    setDragSec(undefined);
    onChange(scrubTo(query, sec, Date.now()));
  };
  const shown = dragSec ?? range.value;
  return (
    <form
      class="time"
      data-testid="time-range"
      onSubmit={(e) => {
        e.preventDefault();
        applyInputs(from, to);
      }}
    >
      <label>
        from{" "}
        <input
          name="since"
          data-testid="time-from"
          type="datetime-local"
          step="1"
          value={from}
          onInput={(e) => setFrom((e.target as HTMLInputElement).value)}
          onChange={(e) => applyInputs((e.target as HTMLInputElement).value, to)}
        />
      </label>
      <label>
        to{" "}
        <input
          name="until"
          data-testid="time-to"
          type="datetime-local"
          step="1"
          value={to}
          onInput={(e) => setTo((e.target as HTMLInputElement).value)}
          onChange={(e) => {
            const t = (e.target as HTMLInputElement).value;
            if (from) applyInputs(from, t);
          }}
        />
      </label>
      <button type="submit">Show</button>
      <input
        data-testid="scrubber"
        type="range"
        min={range.min}
        max={range.max}
        step="1"
        title={`window end: ${clock(shown * 1000)} (history from ${clock(range.min * 1000)})`}
        aria-label="window end"
        value={shown}
        onInput={(e) => {
          const sec = Number((e.target as HTMLInputElement).value);
          setDragSec(sec);
          clearTimeout(settle.current);
          settle.current = setTimeout(() => scrub(sec), DRAG_SETTLE_MS);
        }}
        onChange={(e) => scrub(Number((e.target as HTMLInputElement).value))}
      />
      <span class="scrub-label" data-testid="scrubber-label">
        {query.since === undefined && dragSec === undefined ? "live" : `to ${clock(shown * 1000)}`}
      </span>
      <button
        type="button"
        data-testid="live"
        disabled={query.since === undefined}
        onClick={() => onChange({ filter: query.filter })}
      >
        Live
      </button>
    </form>
  );
}
