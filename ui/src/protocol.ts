/**
 * Messages between the page and the stream worker (ui/src/worker.ts). The worker follows
 * GetFlows, decodes, feeds the graph model and counters, keeps the table's rows, and posts
 * the page a compact {@link Snapshot} at most once per frame the page acknowledges (and
 * at most every {@link SNAPSHOT_MS}): map changes, counters, and only the table rows the
 * page draws (it says which with {@link ViewRequest}), formatted. The page never sees a
 * Flow object except as JSON on request.
 * Everything here is structured-clone safe (no functions, no class instances, no bigint).
 */

import type { MapEdge, MapNode } from "./edge.ts";
import type { FlowCells } from "./format.ts";
import type { ViewQuery } from "./url.ts";

/** Rows the table keeps (newest first). */
export const TABLE_ROWS = 10_000;

/** The fastest the worker posts snapshots, ms (~10 Hz). */
export const SNAPSHOT_MS = 100;

/** One table row as the page shows it: formatted cells plus the id to ask its JSON by. */
export interface RowCells extends FlowCells {
  readonly id: number;
}

/** What ServerStatus said, flattened. */
export interface StatusInfo {
  readonly connected: number;
  readonly unavailable: number;
  readonly unavailableNodes: readonly string[];
  /** The observer's own flows/s. */
  readonly observerRate: number;
}

/** Counters for the status bar and pause button. */
export interface Counters {
  readonly received: number;
  /** Flows/s the page receives (last 5 s). */
  readonly rate: number;
  /** Where events were lost → how many, in first-seen order. */
  readonly lost: readonly (readonly [string, number])[];
  readonly lostTotal: number;
  readonly paused: boolean;
  readonly held: number;
  readonly notShown: number;
  readonly nodes: number;
  readonly edges: number;
}

/** Changes to the map since the last snapshot (GraphModel.takeChanges). */
export interface MapChanges {
  /** The model was cleared before these changes: drop everything held. */
  readonly reset: boolean;
  /** Placed nodes that are new or moved. */
  readonly nodes: MapNode[];
  /** Edges that are new or counted flows. */
  readonly edges: MapEdge[];
  readonly removedNodes: string[];
  readonly removedEdges: string[];
}

/** The worker's periodic update. */
export interface Snapshot {
  readonly type: "snapshot";
  /**
   * The {@link StartRequest.run} current when the worker posted it; the page drops a
   * snapshot of an earlier start (still in flight when it asked for a new one).
   */
  readonly run?: number;
  /** The page drops everything it holds before applying this (new query, reconnect reset). */
  readonly reset: boolean;
  /** Map changes; undefined when the map did not change (or is not due yet). */
  readonly graph?: MapChanges;
  /**
   * The table rows the page asked for ({@link ViewRequest}), newest first, with
   * consecutive ids; undefined when they did not change since the last snapshot.
   */
  readonly rows?: readonly RowCells[];
  /** Id of the newest row (-1: none yet); row `i` from the top has id `newestId - i`. */
  readonly newestId: number;
  /** Rows kept (the table's scrollable length, at most {@link TABLE_ROWS}). */
  readonly total: number;
  readonly counters: Counters;
  /** `live`, `window: N flows`, `disconnected: …`, `loading window`. */
  readonly stream: string;
  /** Undefined when ServerStatus failed or has not answered yet. */
  readonly status?: StatusInfo;
  /** Epoch ms of the oldest flow the observer holds (ring or history), when known. */
  readonly oldestMs?: number;
}

/** The worker's answer to {@link FlowRequest}. */
export interface FlowJson {
  readonly type: "flow";
  readonly id: number;
  /** Undefined when the row is no longer kept. */
  readonly json?: string;
}

/** The observer refused the credentials (or asked for some): the page shows the login. */
export interface AuthRequired {
  readonly type: "auth";
  /** The server's message, e.g. "missing credentials: …" or "invalid bearer token". */
  readonly message: string;
  /** True when credentials were sent and refused (not merely missing). */
  readonly refused: boolean;
}

/** The worker's answer to {@link FilterCheck}: `error` undefined when the text is usable. */
export interface FilterChecked {
  readonly type: "filter";
  readonly text: string;
  readonly error?: string;
}

/** Worker → page. */
export type FromWorker = Snapshot | FlowJson | AuthRequired | FilterChecked;

/**
 * (Re)starts the stream for a view; `auth` is the Authorization header value, if any.
 * `run` numbers the page's starts (increasing); snapshots carry it back.
 */
export interface StartRequest {
  readonly type: "start";
  readonly run: number;
  readonly query: ViewQuery;
  readonly auth?: string;
}
/** Asks for the JSON of table row `id`. */
export interface FlowRequest {
  readonly type: "flow";
  readonly id: number;
}

/** Asks whether filter box text reads (the filter code lives in the worker). */
export interface FilterCheck {
  readonly type: "filter";
  readonly text: string;
}

/**
 * Which rows the page draws: `count` rows from id `topId` down, or the newest `count`
 * when `topId` is undefined (the table is at its top, following new rows).
 */
export interface ViewRequest {
  readonly type: "view";
  readonly topId?: number;
  readonly count: number;
}

/** Page → worker. */
export type ToWorker =
  | StartRequest
  | FilterCheck
  | ViewRequest
  | { readonly type: "pause"; readonly paused: boolean }
  | { readonly type: "relayout" }
  /** The page applied the last snapshot (and drew a frame): the next one may come. */
  | { readonly type: "ready" }
  | FlowRequest;

/**
 * The Authorization header for what the user typed: a value starting with `Bearer ` or
 * `Basic ` is sent as it is, anything else as a bearer token. Empty input: no header.
 */
export function authHeader(token: string): string | undefined {
  const t = token.trim();
  if (t === "") return undefined;
  if (/^(bearer|basic)\s+\S/i.test(t)) return t;
  return `Bearer ${t}`;
}
