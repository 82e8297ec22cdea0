/**
 * The worker's side of the snapshot protocol (pure, no worker globals): what changed in a
 * {@link FlowStore} since the last snapshot, as a {@link Snapshot} the page applies with
 * {@link PageModel} (ui/src/model.ts). Only the rows the page draws are formatted and
 * sent; the map is laid out here (new nodes only) and its counts are sent at most every
 * `graphEveryMs` unless nodes or edges came or went.
 */
import { flowCells } from "./format.ts";
import {
  type Counters,
  type RowCells,
  type Snapshot,
  type StatusInfo,
  TABLE_ROWS,
} from "./protocol.ts";
import type { FlowStore } from "./store.ts";

/** Options for {@link SnapshotBuilder}. */
export interface SnapshotOptions {
  /** Edge counts are resent at most this often unless the map's shape changed. Default 500. */
  graphEveryMs?: number;
  /** After a layout that took t ms, the next waits `layoutBackoff × t`. Default 4. */
  layoutBackoff?: number;
}

/** Builds snapshots of one store for one page. */
export class SnapshotBuilder {
  /** The rows the page draws. */
  private view: { topId?: number; count: number } = { count: 64 };
  /** What the last rows sent were cut from, to skip unchanged ones. */
  private rowsKey = "";
  private resets: number;
  private graphSentMs = Number.NEGATIVE_INFINITY;
  /** No layout before this (see {@link build}). */
  private layoutDueMs = Number.NEGATIVE_INFINITY;
  private pendingReset = true;
  private readonly graphEveryMs: number;
  private readonly layoutBackoff: number;

  constructor(
    private readonly store: FlowStore,
    opts: SnapshotOptions = {},
  ) {
    this.graphEveryMs = opts.graphEveryMs ?? 500;
    this.layoutBackoff = opts.layoutBackoff ?? 4;
    this.resets = store.resets;
  }

  /** Places new nodes (all nodes after {@link relayout}) before the next snapshot. */
  private relayoutAll = false;

  /** The rows the page draws from now on (at most {@link TABLE_ROWS}). */
  setView(topId: number | undefined, count: number): void {
    const c = Math.max(0, Math.min(TABLE_ROWS, Math.floor(count)));
    this.view = topId === undefined ? { count: c } : { topId, count: c };
  }

  /** Re-places every node in the next snapshot. */
  relayout(): void {
    this.relayoutAll = true;
  }

  /** The next snapshot at `nowMs`. */
  build(nowMs: number, stream: string, status?: StatusInfo, oldestMs?: number): Snapshot {
    const { store } = this;
    const graph = store.graph;
    let reset = this.pendingReset;
    this.pendingReset = false;
    if (store.resets !== this.resets) {
      this.resets = store.resets;
      reset = true;
    }
    // dagre lays out the whole graph for new nodes: a slow layout waits 4× its own time
    // (by default) before the next, so a map with many new nodes costs the worker at most
    // a fifth.
    if (this.relayoutAll || (graph.needsLayout() && nowMs >= this.layoutDueMs)) {
      const t0 = performance.now();
      graph.layout(this.relayoutAll);
      this.layoutDueMs = nowMs + this.layoutBackoff * (performance.now() - t0);
    }
    this.relayoutAll = false;
    const shapeChanged = graph.hasShapeChanges();
    const due = nowMs - this.graphSentMs >= this.graphEveryMs;
    let changes: Snapshot["graph"];
    if (reset || shapeChanged || (due && graph.hasChanges())) {
      changes = graph.takeChanges();
      this.graphSentMs = nowMs;
    }
    const { topId, count } = this.view;
    // Rows change when new ones come (following the newest) or when they are dropped.
    const key = `${this.resets}:${topId}:${count}:${topId === undefined ? store.rowSeq : ""}:${store.rowSeq - store.kept()}`;
    let rows: RowCells[] | undefined;
    if (reset || key !== this.rowsKey) {
      rows = store.rowsDown(topId, count).map(({ id, flow }) => ({ id, ...flowCells(flow) }));
      this.rowsKey = key;
    }
    return {
      type: "snapshot",
      reset: reset || (changes?.reset ?? false),
      ...(changes !== undefined ? { graph: changes } : {}),
      ...(rows !== undefined ? { rows } : {}),
      newestId: store.rowSeq - 1,
      total: store.kept(),
      counters: this.counters(nowMs),
      stream,
      ...(status !== undefined ? { status } : {}),
      ...(oldestMs !== undefined ? { oldestMs } : {}),
    };
  }

  private counters(nowMs: number): Counters {
    const s = this.store;
    return {
      received: s.received,
      rate: s.rate(nowMs),
      lost: [...s.lost.entries()],
      lostTotal: s.lostTotal(),
      paused: s.paused,
      held: s.held.length,
      notShown: s.notShown,
      nodes: s.graph.nodes.size,
      edges: s.graph.edges.size,
    };
  }
}
