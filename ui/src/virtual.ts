/**
 * Virtualised list math (pure): which rows of a fixed-row-height list are in view, so the
 * table renders only those (plus a few either side) and spacers for the rest.
 */

/** The rows to render and the space above and below them. */
export interface RowWindow {
  /** First row index rendered. */
  readonly start: number;
  /** One past the last row index rendered. */
  readonly end: number;
  /** Pixels above the first rendered row (a spacer). */
  readonly padTop: number;
  /** Pixels below the last rendered row. */
  readonly padBottom: number;
}

/**
 * Rows `[start, end)` visible in a viewport `viewportPx` tall scrolled to `scrollTop`,
 * of `total` rows each `rowPx` tall, widened by `overscan` rows on each side.
 */
export function rowWindow(
  scrollTop: number,
  viewportPx: number,
  rowPx: number,
  total: number,
  overscan = 8,
): RowWindow {
  if (total <= 0 || rowPx <= 0) return { start: 0, end: 0, padTop: 0, padBottom: 0 };
  const top = Math.max(0, Math.min(scrollTop, total * rowPx));
  const first = Math.floor(top / rowPx);
  const shown = Math.ceil(Math.max(0, viewportPx) / rowPx) + 1;
  const start = Math.max(0, first - overscan);
  const end = Math.min(total, first + shown + overscan);
  return {
    start,
    end: Math.max(start, end),
    padTop: start * rowPx,
    padBottom: Math.max(0, total - Math.max(start, end)) * rowPx,
  };
}
