/**
 * The bytes line of an edge's details: asks the observer's FlowStatsService (same origin,
 * Connect) for the view's window — the URL's since/until, or the last
 * {@link LIVE_WINDOW_MS} when live, every {@link POLL_MS} — and for the addresses of the
 * edges shown only, and shows each edge's bytes and packets both ways, "unknown" where no
 * flow record matched.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { FlowStatsService } from "@periscope/proto/src/gen/periscope/flowstats/v1/flowstats_pb.ts";
import { h, type VNode } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { storedAuth, withStoredAuth } from "./auth.ts";
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
  /** Each shown edge's redraw callback → its "client>server" address pairs. */
  readonly #listeners = new Map<() => void, readonly string[]>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastAsked = "";
  #lastLiveMs = 0;
  #busy = false;
  /** The credentials the table was asked with: other ones (signed out or in) drop it. */
  #tableAuth: string | undefined;
  readonly #client = createClient(
    FlowStatsService,
    createConnectTransport({
      baseUrl: location.origin,
      useBinaryFormat: true,
      interceptors: [withStoredAuth],
    }),
  );

  subscribe(fn: () => void): () => void {
    this.#listeners.set(fn, this.#listeners.get(fn) ?? []);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => void this.poll(), POLL_MS / 5);
    }
    return () => {
      this.#listeners.delete(fn);
      if (this.#listeners.size === 0 && this.#timer !== undefined) {
        clearInterval(this.#timer);
        this.#timer = undefined;
        this.#lastAsked = "";
      }
    };
  }

  /** The addresses an edge shows (the request asks only for these). */
  setAddrs(fn: () => void, addrs: readonly string[] | undefined): void {
    this.#listeners.set(fn, addrs ?? []);
  }

  /** Asks when the window or the addresses changed, and every POLL_MS while live. */
  async poll(): Promise<void> {
    if (this.#busy) return;
    const auth = storedAuth();
    if (auth !== this.#tableAuth) {
      this.table = undefined;
      this.#lastAsked = "";
      this.#tableAuth = auth;
    }
    const q = readQuery(location.search);
    const now = Date.now();
    const live = q.since === undefined;
    const ips = new Set<string>();
    for (const pairs of this.#listeners.values())
      for (const p of pairs) for (const ip of p.split(">")) if (ip) ips.add(ip);
    if (ips.size === 0) return;
    const list = [...ips].sort();
    const asked = `${live ? "live" : `${q.since}-${q.until ?? ""}`} ${list.join(",")}`;
    if (asked === this.#lastAsked && (!live || now - this.#lastLiveMs < POLL_MS)) return;
    this.#busy = true;
    try {
      const res = await this.#client.getFlowStats({
        ips: list,
        ...(live
          ? { since: timestampFromMs(now - LIVE_WINDOW_MS) }
          : {
              since: timestampFromMs(q.since as number),
              ...(q.until !== undefined ? { until: timestampFromMs(q.until) } : {}),
            }),
      });
      // Signed out or in while asking: the answer is not for these credentials.
      if (storedAuth() !== auth) return;
      this.table = new ByteTable(res.stats);
      this.error = "";
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    } finally {
      this.#busy = false;
    }
    this.#lastAsked = asked;
    this.#lastLiveMs = now;
    for (const fn of this.#listeners.keys()) fn();
  }
}

let poller: BytesPoller | undefined;

/** One edge's bytes and packets, client → server and back. */
export function EdgeBytesLine(props: { edge: EdgeKey }): VNode {
  const [, setTick] = useState(0);
  const redraw = useMemo(() => () => setTick((n) => n + 1), []);
  poller ??= new BytesPoller();
  useEffect(() => poller?.subscribe(redraw), [redraw]);
  poller.setAddrs(redraw, props.edge.addrs);
  const b = poller?.table?.forEdge(props.edge);
  const live = readQuery(location.search).since === undefined;
  const attrs: Record<string, string> = {
    "data-testid": "edge-bytes",
    title: `From the collectors' flow records ${live ? "of the last 5 minutes" : "in the window"}: client → server · server → client`,
  };
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
