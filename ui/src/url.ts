/**
 * The view's shareable state in the URL query: `filter` (the filter box's text), `since`
 * and `until` (ISO times; without `since` the view follows live flows).
 */

/** What the URL says about the view. */
export interface ViewQuery {
  readonly filter: string;
  /** Epoch ms; set = history window instead of live follow. */
  readonly since?: number;
  readonly until?: number;
}

/** Epoch ms of an ISO time or epoch-ms string, undefined when absent or unreadable. */
function time(v: string | null): number | undefined {
  if (!v) return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  return Number.isFinite(n) ? n : undefined;
}

/** Reads `?filter=...&since=...&until=...`. */
export function readQuery(search: string): ViewQuery {
  const p = new URLSearchParams(search);
  const since = time(p.get("since"));
  const until = time(p.get("until"));
  return {
    filter: p.get("filter") ?? "",
    ...(since !== undefined ? { since } : {}),
    ...(since !== undefined && until !== undefined ? { until } : {}),
  };
}

/** The query string for `q` ("" when it is the default live view). */
export function queryString(q: ViewQuery): string {
  const p = new URLSearchParams();
  if (q.filter) p.set("filter", q.filter);
  if (q.since !== undefined) p.set("since", new Date(q.since).toISOString());
  if (q.until !== undefined) p.set("until", new Date(q.until).toISOString());
  const s = p.toString();
  return s ? `?${s}` : "";
}
