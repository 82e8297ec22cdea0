/**
 * The stream worker's state: the graph model, the newest table rows (as decoded flows,
 * for their JSON on request), counters for the status bar and the flows held while
 * paused. The stream feeds it at any rate; snapshots (snapshot.ts) read it.
 */
import type { Flow, LostEvent } from "@periscope/proto/src/gen/flow/flow_pb.ts";
import { LostEventSource } from "@periscope/proto/src/gen/flow/flow_pb.ts";
import { flowTimeMs } from "./format.ts";
import { GraphModel } from "./graph.ts";
import { TABLE_ROWS } from "./protocol.ts";

export { TABLE_ROWS };

/** Flows held while paused; more are counted as not shown. */
export const PAUSE_BUFFER = 50_000;

/** Where events were lost → how many. */
export type LostCounts = Map<string, number>;

/** Mutable page state fed by the flow stream. */
export class FlowStore {
  readonly graph = new GraphModel();
  /** Newest last; trimmed to TABLE_ROWS. */
  rows: Flow[] = [];
  /** Rows ever added since the last reset; the newest row's id is `rowSeq - 1`. */
  rowSeq = 0;
  /** Bumped by {@link reset}, so readers know their row ids are stale. */
  resets = 0;
  received = 0;
  readonly lost: LostCounts = new Map();
  paused = false;
  held: Flow[] = [];
  /** Flows not shown because the pause buffer was full. */
  notShown = 0;
  version = 0;
  private rateWindow: number[] = [];
  private readonly pauseBuffer: number;

  /** `pauseBuffer`: flows held while paused (default {@link PAUSE_BUFFER}). */
  constructor(opts: { pauseBuffer?: number } = {}) {
    this.pauseBuffer = opts.pauseBuffer ?? PAUSE_BUFFER;
  }

  /** Newest flow time seen (ms), where a reconnect resumes. */
  lastTimeMs = 0;
  /** UUIDs of the flows at {@link lastTimeMs}: a resumed stream repeats them. */
  private lastUuids = new Set<string>();

  /** Takes one flow from the stream (a repeat of the newest ones after a reconnect is skipped). */
  onFlow(flow: Flow, nowMs = Date.now()): void {
    const t = flowTimeMs(flow);
    if (t === this.lastTimeMs && flow.uuid !== "") {
      if (this.lastUuids.has(flow.uuid)) return;
      this.lastUuids.add(flow.uuid);
    } else if (t > this.lastTimeMs) {
      this.lastTimeMs = t;
      this.lastUuids = new Set(flow.uuid ? [flow.uuid] : []);
    }
    this.received++;
    this.rateWindow.push(nowMs);
    if (this.paused) {
      if (this.held.length < this.pauseBuffer) this.held.push(flow);
      else this.notShown++;
      this.version++;
      return;
    }
    this.apply(flow);
  }

  private apply(flow: Flow): void {
    this.graph.add(flow);
    this.rows.push(flow);
    this.rowSeq++;
    if (this.rows.length > TABLE_ROWS * 2) this.rows = this.rows.slice(-TABLE_ROWS);
    this.version++;
  }

  /** Counts a LostEvent under "where it was lost" (source, and CPU when known). */
  onLost(ev: LostEvent): void {
    const where = `${LostEventSource[ev.source] ?? `source ${ev.source}`}${ev.cpu !== undefined ? ` cpu ${ev.cpu}` : ""}`;
    this.lost.set(where, (this.lost.get(where) ?? 0) + Number(ev.numEventsLost));
    this.version++;
  }

  /** Pauses or resumes; resuming applies what was held. */
  setPaused(p: boolean): void {
    this.paused = p;
    if (!p) {
      for (const f of this.held) this.apply(f);
      this.held = [];
    }
    this.version++;
  }

  /** Flows per second over the last `windowMs`. */
  rate(nowMs = Date.now(), windowMs = 5000): number {
    const cut = nowMs - windowMs;
    let i = 0;
    while (i < this.rateWindow.length && (this.rateWindow[i] as number) < cut) i++;
    if (i > 0) this.rateWindow = this.rateWindow.slice(i);
    return this.rateWindow.length / (windowMs / 1000);
  }

  /** The newest `n` rows, newest first. */
  newest(n = TABLE_ROWS): Flow[] {
    return this.rows.slice(-n).reverse();
  }

  /** The flow of row `id` while it is still kept, else undefined. */
  flowById(id: number): Flow | undefined {
    const back = this.rowSeq - id;
    if (!Number.isInteger(id) || back < 1 || back > Math.min(this.rows.length, TABLE_ROWS)) {
      return undefined;
    }
    return this.rows[this.rows.length - back];
  }

  /** Rows kept (at most {@link TABLE_ROWS}); their ids run `rowSeq - kept` … `rowSeq - 1`. */
  kept(): number {
    return Math.min(this.rows.length, TABLE_ROWS);
  }

  /**
   * Up to `count` kept rows from id `topId` (default: the newest) down, newest first,
   * with their ids.
   */
  rowsDown(topId: number | undefined, count: number): { id: number; flow: Flow }[] {
    const oldest = this.rowSeq - this.kept();
    const out: { id: number; flow: Flow }[] = [];
    for (let id = Math.min(topId ?? this.rowSeq - 1, this.rowSeq - 1); id >= oldest; id--) {
      if (out.length >= count) break;
      out.push({ id, flow: this.rows[this.rows.length - (this.rowSeq - id)] as Flow });
    }
    return out;
  }

  /** Total events lost. */
  lostTotal(): number {
    let n = 0;
    for (const v of this.lost.values()) n += v;
    return n;
  }

  /** Forgets everything (new filter or window). */
  reset(): void {
    this.graph.clear();
    this.rows = [];
    this.rowSeq = 0;
    this.resets++;
    this.held = [];
    this.notShown = 0;
    this.received = 0;
    this.lost.clear();
    this.rateWindow = [];
    this.lastTimeMs = 0;
    this.lastUuids = new Set();
    this.version++;
  }
}
