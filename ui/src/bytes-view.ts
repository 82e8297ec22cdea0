/**
 * The bytes line of an edge's details: asks the observer's FlowStatsService (same origin,
 * Connect) for the view's window — the URL's since/until, or the last
 * {@link LIVE_WINDOW_MS} when live, every {@link POLL_MS} — and shows each edge's bytes and
 * packets both ways, "unknown" where no flow record matched.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { FlowStatsService } from "@periscope/proto/src/gen/periscope/flowstats/v1/flowstats_pb.ts";
import { h, type VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ByteTable, type EdgeKey, formatCounts } from "./bytes.ts";
import { readQuery } from "./url.ts";

/** Live view: records of the last 5 minutes (the map's idle time). */
export const LIVE_WINDOW_MS = 5 * 60_000;
/** How often a live view asks again, ms. */
export const POLL_MS = 5_000;

/** The shared table, refreshed while some edge shows it. */
class BytesPoller {
  table: ByteTable | undefined;
  /** What went wrong on the last call ("" when it worked). */
  error = "";
  readonly #listeners = new Set<() => void>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastWindow = "";
  #client = createClient(
    FlowStatsService,
    createConnectTransport({ baseUrl: location.origin, useBinaryFormat: true }),
  );

  subscribe(fn: () => void): () => void {
    this.#listeners.add(fn);
    if (this.#timer === undefined) {
      void this.poll();
      this.#timer = setInterval(() => void this.poll(), POLL_MS / 5);
    }
    return () => {
      this.#listeners.delete(fn);
      if (this.#listeners.size === 0 && this.#timer !== undefined) {
        clearInterval(this.#timer);
        this.#timer = undefined;
        this.#lastWindow = "";
      }
    };
  }

  #lastLiveMs = 0;
  #busy = false;

  /** Asks when the window changed, and every POLL_MS while live. */
  async poll(): Promise<void> {
    if (this.#busy) return;
    const q = readQuery(location.search);
    const now = Date.now();
    const live = q.since === undefined;
    const window = live ? "live" : `${q.since}-${q.until ?? ""}`;
    if (window === this.#lastWindow && (!live || now - this.#lastLiveMs < POLL_MS)) return;
    this.#busy = true;
    try {
      const res = await this.#client.getFlowStats(
        live
          ? { since: timestampFromMs(now - LIVE_WINDOW_MS) }
          : {
              since: timestampFromMs(q.since as number),
              ...(q.until !== undefined ? { until: timestampFromMs(q.until) } : {}),
            },
      );
      this.table = new ByteTable(res.stats);
      this.error = "";
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    } finally {
      this.#busy = false;
    }
    this.#lastWindow = window;
    this.#lastLiveMs = now;
    for (const fn of this.#listeners) fn();
  }
}

let poller: BytesPoller | undefined;

/** One edge's bytes and packets, client → server and back. */
export function EdgeBytesLine(props: { edge: EdgeKey }): VNode {
  const [, setTick] = useState(0);
  useEffect(() => {
    poller ??= new BytesPoller();
    return poller.subscribe(() => setTick((n) => n + 1));
  }, []);
  const b = poller?.table?.forEdge(props.edge);
  const attrs: Record<string, string> = { "data-testid": "edge-bytes" };
  if (b?.forward) {
    attrs["data-bytes-forward"] = String(b.forward.bytes);
    attrs["data-packets-forward"] = String(b.forward.packets);
  }
  if (b?.reverse) {
    attrs["data-bytes-reverse"] = String(b.reverse.bytes);
    attrs["data-packets-reverse"] = String(b.reverse.packets);
  }
  const err = poller?.error ? ` (flow stats: ${poller.error})` : "";
  return h(
    "div",
    attrs,
    `bytes: → ${formatCounts(b?.forward)} · ← ${formatCounts(b?.reverse)}${err}`,
  );
}
