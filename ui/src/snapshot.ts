/**
 * The worker's side of the snapshot protocol (pure, no worker globals): what changed in a
 * {@link FlowStore} since the last snapshot, as a {@link Snapshot} the page applies with
 * {@link PageModel} (ui/src/model.ts). Rows are formatted here, once, and only the newest
 * ones the table keeps; the map is laid out here (new nodes only) and its counts are sent
 * at most every `graphEveryMs` unless nodes or edges came or went.
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
  /** Rows the page keeps; a snapshot carries at most this many. Default {@link TABLE_ROWS}. */
  maxRows?: number;
  /** Edge counts are resent at most this often unless the map's shape changed. Default 500. */
  graphEveryMs?: number;
}

/** Builds snapshots of one store for one page. */
export class SnapshotBuilder {
  private nextRow = 0;
  private resets: number;
  private graphSentMs = Number.NEGATIVE_INFINITY;
  private pendingReset = true;
  private readonly maxRows: number;
  private readonly graphEveryMs: number;

  constructor(
    private readonly store: FlowStore,
    opts: SnapshotOptions = {},
  ) {
    this.maxRows = opts.maxRows ?? TABLE_ROWS;
    this.graphEveryMs = opts.graphEveryMs ?? 500;
    this.resets = store.resets;
  }

  /** Places new nodes (all nodes after {@link relayout}) before the next snapshot. */
  private relayoutAll = false;

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
      this.nextRow = 0;
      reset = true;
    }
    if (graph.needsLayout() || this.relayoutAll) graph.layout(this.relayoutAll);
    this.relayoutAll = false;
    const shapeChanged = graph.hasShapeChanges();
    const due = nowMs - this.graphSentMs >= this.graphEveryMs;
    let changes: Snapshot["graph"];
    if (reset || shapeChanged || (due && graph.hasChanges())) {
      changes = graph.takeChanges();
      this.graphSentMs = nowMs;
    }
    const rows: RowCells[] = [];
    for (const { id, flow } of store.rowsSince(this.nextRow, this.maxRows)) {
      rows.push({ id, ...flowCells(flow) });
    }
    this.nextRow = store.rowSeq;
    return {
      type: "snapshot",
      reset: reset || (changes?.reset ?? false),
      ...(changes !== undefined ? { graph: changes } : {}),
      rows,
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
