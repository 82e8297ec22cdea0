import { Counter, Histogram, type Registry } from "prom-client";

/** The label-set cap shared by every metric of one registry, and where overflow goes. */
export interface LabelSetLimit {
  /** Label sets one metric holds at most; increments for a further new set are not kept. */
  readonly max: number;
  /** Called once per increment refused because `metric` is full. */
  overflow(metric: string): void;
}

/** A place an increment lands: a label set's counter or histogram buckets. */
export interface Cell {
  apply(amount: number): void;
}

/**
 * Increments resolved now and applied later: while `staging`, metrics record the cell and
 * amount here instead of applying them ({@link Journal.take} hands them out). The label
 * work happens while the flows are hot in the CPU caches; applying touches only cells.
 */
export class Journal {
  staging = false;
  cells: Cell[] = [];
  amounts: number[] = [];

  /** Applies `amount` to `cell` now, or records it while staging. */
  add(cell: Cell, amount: number): void {
    if (this.staging) {
      this.cells.push(cell);
      this.amounts.push(amount);
    } else {
      cell.apply(amount);
    }
  }

  /** The recorded increments (and a fresh, empty record). */
  take(): StagedIncrements {
    const staged = { cells: this.cells, amounts: this.amounts };
    this.cells = [];
    this.amounts = [];
    return staged;
  }
}

/** Increments {@link Journal.take} handed out, for {@link applyStaged}. */
export interface StagedIncrements {
  readonly cells: readonly Cell[];
  readonly amounts: readonly number[];
}

/** Applies increments recorded earlier. */
export function applyStaged(staged: StagedIncrements): void {
  for (let i = 0; i < staged.cells.length; i++) staged.cells[i]?.apply(staged.amounts[i] ?? 0);
}

/** Options of a metric whose label sets live in a {@link LabelSetTable}. */
export interface TableMetricOptions {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly registry: Registry;
  readonly limit: LabelSetLimit;
  /** Where increments go (default: applied at once). */
  readonly journal?: Journal;
}

/** A counter's value for one label set. */
class CounterCell implements Cell {
  n = 0;
  apply(amount: number): void {
    this.n += amount;
  }
}

/** A level of a {@link LabelSetTable}: label value → next level (or the entry, at the last). */
type Level = Map<string, unknown>;

/**
 * Label sets of one metric, at most `limit.max` of them, in a tree with one level per
 * label. A lookup is one Map.get per label on strings that are mostly constants (their
 * hash is cached), with no key string built per increment.
 */
class LabelSetTable<E> {
  readonly entries: { labels: Record<string, string>; value: E }[] = [];
  readonly #root: Level = new Map();
  #single: E | undefined;
  constructor(
    private readonly metric: string,
    private readonly names: readonly string[],
    private readonly limit: LabelSetLimit,
  ) {}

  /** The entry of these label values, made by `make` when new; undefined when the table is full. */
  entry(values: readonly string[], make: () => E): E | undefined {
    const last = this.names.length - 1;
    if (values.length !== this.names.length) {
      throw new RangeError(
        `${this.metric}: ${values.length} label values for ${this.names.length} labels`,
      );
    }
    if (last < 0) {
      if (this.#single === undefined) this.#single = this.#add(values, make);
      return this.#single;
    }
    let level = this.#root;
    for (let i = 0; i < last; i++) {
      const v = values[i] ?? "";
      let next = level.get(v) as Level | undefined;
      if (next === undefined) {
        // A new label set: no new level for one that would be refused.
        if (this.entries.length >= this.limit.max) return this.#add(values, make);
        next = new Map();
        level.set(v, next);
      }
      level = next;
    }
    const v = values[last] ?? "";
    const found = level.get(v) as E | undefined;
    if (found !== undefined) return found;
    const made = this.#add(values, make);
    if (made !== undefined) level.set(v, made);
    return made;
  }

  #add(values: readonly string[], make: () => E): E | undefined {
    if (this.entries.length >= this.limit.max) {
      this.limit.overflow(this.metric);
      return undefined;
    }
    const labels: Record<string, string> = {};
    this.names.forEach((n, i) => {
      labels[n] = values[i] ?? "";
    });
    const value = make();
    this.entries.push({ labels, value });
    return value;
  }
}

/** A prom-client counter whose label sets are counted in a capped {@link LabelSetTable}. */
export class TableCounter extends Counter<string> {
  private readonly table: LabelSetTable<CounterCell>;
  private readonly journal: Journal;
  /** The metric's name. */
  readonly metricName: string;
  constructor(opts: TableMetricOptions) {
    super({ name: opts.name, help: opts.help, labelNames: opts.labelNames, registers: [] });
    this.metricName = opts.name;
    this.journal = opts.journal ?? new Journal();
    this.table = new LabelSetTable(opts.name, opts.labelNames, opts.limit);
    opts.registry.registerMetric(this);
  }

  /** Adds `n` to the label set with these values (in labelNames order). */
  add(values: readonly string[], n = 1): void {
    const cell = this.table.entry(values, () => new CounterCell());
    if (cell !== undefined) this.journal.add(cell, n);
  }

  /** Label sets held. */
  get size(): number {
    return this.table.entries.length;
  }

  override async get(): ReturnType<Counter<string>["get"]> {
    const base = await super.get();
    base.values = this.table.entries.map((e) => ({
      labels: e.labels,
      value: e.value.n,
    }));
    return base;
  }
}

/** Go's prometheus.DefBuckets, which Hubble's histograms use (seconds). */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** A histogram's buckets for one label set; `apply` records one observation. */
class BucketCounts implements Cell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }
  apply(value: number): void {
    const i = this.bounds.findIndex((b) => value <= b);
    if (i >= 0) this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.sum += value;
    this.count++;
  }
}

/** A prom-client histogram whose label sets live in a capped {@link LabelSetTable}. */
export class TableHistogram extends Histogram<string> {
  private readonly table: LabelSetTable<BucketCounts>;
  private readonly bounds: readonly number[];
  private readonly journal: Journal;
  /** An always-empty histogram of the same name: the frame {@link get} fills. */
  private readonly shape: Histogram<string>;
  /** The metric's name. */
  readonly metricName: string;
  constructor(opts: TableMetricOptions & { readonly buckets?: readonly number[] }) {
    const bounds = [...(opts.buckets ?? DEFAULT_BUCKETS)];
    super({
      name: opts.name,
      help: opts.help,
      labelNames: opts.labelNames,
      buckets: bounds,
      registers: [],
    });
    this.bounds = bounds;
    this.journal = opts.journal ?? new Journal();
    this.metricName = opts.name;
    this.shape = new Histogram({
      name: opts.name,
      help: opts.help,
      labelNames: opts.labelNames,
      registers: [],
    });
    this.table = new LabelSetTable(opts.name, opts.labelNames, opts.limit);
    opts.registry.registerMetric(this);
  }

  /** Records `value` for the label set with these values (in labelNames order). */
  record(values: readonly string[], value: number): void {
    const cell = this.table.entry(values, () => new BucketCounts(this.bounds));
    if (cell !== undefined) this.journal.add(cell, value);
  }

  /** Label sets held. */
  get size(): number {
    return this.table.entries.length;
  }

  /** What the registry renders (prom-client asks histograms for this before `get`). */
  async getForPromString(): ReturnType<Histogram<string>["get"]> {
    return this.get();
  }

  override async get(): ReturnType<Histogram<string>["get"]> {
    const base = await this.shape.get();
    const name = this.metricName;
    base.values = [];
    for (const { labels, value } of this.table.entries) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += value.counts[i] ?? 0;
        base.values.push({
          labels: { ...labels, le },
          value: cumulative,
          metricName: `${name}_bucket`,
        });
      });
      base.values.push(
        { labels: { ...labels, le: "+Inf" }, value: value.count, metricName: `${name}_bucket` },
        { labels, value: value.sum, metricName: `${name}_sum` },
        { labels, value: value.count, metricName: `${name}_count` },
      );
    }
    return base;
  }
}
