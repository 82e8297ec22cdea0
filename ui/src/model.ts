/**
 * The page's side of the snapshot protocol (pure, no DOM): what the view draws, kept up to
 * date by applying the worker's {@link Snapshot}s. Nodes and edges are the worker's
 * objects (structured clones); rows are formatted cells of the part of the table the page
 * draws, newest first.
 */
import type { MapEdge, MapNode } from "./edge.ts";
import type { Counters, RowCells, Snapshot, StatusInfo } from "./protocol.ts";

/** Counters before the first snapshot. */
const NO_COUNTERS: Counters = {
  received: 0,
  rate: 0,
  lost: [],
  lostTotal: 0,
  paused: false,
  held: 0,
  notShown: 0,
  nodes: 0,
  edges: 0,
};

/** What the page shows. */
export class PageModel {
  readonly nodes = new Map<string, MapNode>();
  readonly edges = new Map<string, MapEdge>();
  /** The rows the page asked for, newest first, consecutive ids. */
  rows: readonly RowCells[] = [];
  /** Id of the newest row, -1 before any. */
  newestId = -1;
  /** Rows kept in the worker: the table's scrollable length. */
  total = 0;
  counters: Counters = NO_COUNTERS;
  stream = "connecting";
  status: StatusInfo | undefined;
  oldestMs: number | undefined;
  /** Bumped when the map changed (nodes/edges), for the map's memo. */
  mapVersion = 0;
  /** Bumped on every applied snapshot. */
  version = 0;

  /** The row `index` places from the top (0 = newest), when it is among those held. */
  rowAt(index: number): RowCells | undefined {
    const top = this.rows[0];
    if (top === undefined) return undefined;
    const r = this.rows[top.id - (this.newestId - index)];
    return r !== undefined && r.id === this.newestId - index ? r : undefined;
  }

  /** Applies one snapshot. */
  apply(s: Snapshot): void {
    if (s.reset) {
      this.nodes.clear();
      this.edges.clear();
      this.rows = [];
      this.mapVersion++;
    }
    const g = s.graph;
    if (g !== undefined) {
      for (const id of g.removedEdges) this.edges.delete(id);
      for (const id of g.removedNodes) this.nodes.delete(id);
      for (const n of g.nodes) this.nodes.set(n.id, n);
      for (const e of g.edges) this.edges.set(e.id, e);
      this.mapVersion++;
    }
    if (s.rows !== undefined) this.rows = s.rows;
    this.newestId = s.newestId;
    this.total = s.total;
    this.counters = s.counters;
    this.stream = s.stream;
    this.status = s.status;
    if (s.oldestMs !== undefined) this.oldestMs = s.oldestMs;
    this.version++;
  }
}
