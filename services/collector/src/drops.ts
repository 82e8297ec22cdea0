import { dirname, join } from "node:path";
import { DropProgram, KernelSymbols, kernelDropReasons } from "@periscope/bpf";
import { type Bus, type DropReasonRegistry, openDropReasonRegistry } from "@periscope/bus";
import { ConfigError } from "@periscope/config";
import type { Logger, Metrics } from "@periscope/telemetry";
import type { AttachedDevice } from "./attacher.ts";

/** Which kernel drops are reported: every namespace, only watched ones, none. */
export type DropsMode = "all" | "watched" | "off";

/** Milliseconds between reads of the program's record count into drop_records_total. */
const COUNT_SYNC_MS = 1000;

/** Values accepted by `--drops` / PERISCOPE_DROPS. */
export const DROPS_MODES: readonly DropsMode[] = ["all", "watched", "off"];

/**
 * Kernel reasons never reported (docs/internals.md, "Drops"): the two "not a drop"
 * values, the catch-all of every unconverted kfree_skb() call (mostly benign frees),
 * and tc drops, which the tc program that dropped reports itself.
 */
export const SKIPPED_DROP_REASONS: ReadonlySet<string> = new Set([
  "NOT_DROPPED_YET",
  "CONSUMED",
  "NOT_SPECIFIED",
  "TC_INGRESS",
  "TC_EGRESS",
]);

/** Parses `--drops`; ConfigError naming `field` for anything else. */
export function parseDropsMode(raw: string | undefined, field: string): DropsMode {
  const v = (raw ?? "all").trim();
  if ((DROPS_MODES as readonly string[]).includes(v)) return v as DropsMode;
  throw new ConfigError(field, `must be one of ${DROPS_MODES.join(", ")}, got "${v}"`);
}

/** What the drop program needs from the loaded trace program. */
export interface TraceMaps {
  mapFd(name: string): number;
}

/** Settings for {@link KernelDrops.start}. */
export interface KernelDropsOptions {
  readonly mode: DropsMode;
  readonly node: string;
  readonly captureLen: number;
  /** drop.bpf.o; the default object next to trace.bpf.o when absent. */
  readonly objectPath?: string;
  readonly trace: TraceMaps;
  readonly metrics: Metrics;
  readonly log: Logger;
}

/**
 * The collector's kernel drop reporting: the drop program attached to skb:kfree_skb,
 * writing into the trace ring buffer, the kernel's reason table published for readers,
 * and a count of the drop records it wrote (`drop_records_total`).
 */
export class KernelDrops {
  readonly #program: DropProgram;
  readonly #reasons: ReadonlyMap<number, string>;
  readonly #node: string;
  readonly #log: Logger;
  readonly #syncCount: () => void;
  readonly #timer: ReturnType<typeof setInterval>;
  #watched = new Set<bigint>();
  #closed = false;
  #registry: DropReasonRegistry | undefined;
  #symbols: KernelSymbols | undefined;
  /** Drop locations published so far, with their symbols. */
  readonly #locations = new Map<bigint, string>();
  #publishing = false;

  private constructor(
    program: DropProgram,
    reasons: ReadonlyMap<number, string>,
    o: KernelDropsOptions,
  ) {
    this.#program = program;
    this.#reasons = reasons;
    this.#node = o.node;
    this.#log = o.log;
    // drop_records_total follows the count the kernel program keeps as it writes records.
    const counter = o.metrics.counter(
      "drop_records_total",
      "Kernel drop records written to the ring buffer (skb:kfree_skb); also in events_read_total once drained.",
    );
    let reported = 0n;
    this.#syncCount = () => {
      const now = program.readEmitted();
      if (now > reported) counter.inc(Number(now - reported));
      reported = now;
    };
    this.#timer = setInterval(() => {
      try {
        this.#syncCount();
        this.#syncLocations();
      } catch (err) {
        o.log.error({ err }, "reading the drop program's counters failed");
      }
    }, COUNT_SYNC_MS);
    this.#timer.unref?.();
  }

  /**
   * Reads the kernel's reason table and loads the drop program (mode "off": nothing,
   * undefined). Throws BpfError when BTF or the program cannot be loaded.
   */
  static start(o: KernelDropsOptions): KernelDrops | undefined {
    if (o.mode === "off") return undefined;
    const reasons = kernelDropReasons();
    const keep = [...reasons].filter(([, n]) => !SKIPPED_DROP_REASONS.has(n)).map(([v]) => v);
    const program = DropProgram.load({
      ...(o.objectPath !== undefined ? { objectPath: o.objectPath } : {}),
      captureLen: o.captureLen,
      eventsFd: o.trace.mapFd("events"),
      lostEventsFd: o.trace.mapFd("lost_events"),
      // drops counted into flow records too (flow export)
      flowGenFd: o.trace.mapFd("flow_gen"),
      reasons: keep,
      watchedOnly: o.mode === "watched",
    });
    o.log.info({ mode: o.mode, reasons: keep.length }, "kernel drop reporting on");
    return new KernelDrops(program, reasons, o);
  }

  /**
   * Publishes this kernel's reason table (KV `periscope-kernel`, `<node>.drop-reasons`)
   * and from then on, every second, the symbols of new drop locations
   * (`<node>.drop-locations`).
   */
  async publishReasons(bus: Bus): Promise<void> {
    const registry = await openDropReasonRegistry(bus);
    this.#registry = registry;
    await registry.put({ node: this.#node, reasons: this.#reasons });
  }

  /** Names drop locations not seen before and publishes the node's whole table. */
  #syncLocations(): void {
    const registry = this.#registry;
    if (registry === undefined || this.#publishing) return;
    const fresh = this.#program.locations().filter((l) => !this.#locations.has(l));
    if (fresh.length === 0) return;
    this.#symbols ??= KernelSymbols.load();
    for (const l of fresh)
      this.#locations.set(l, this.#symbols.resolve(l) ?? `0x${l.toString(16)}`);
    this.#publishing = true;
    registry
      .putLocations({ node: this.#node, locations: this.#locations })
      .catch((err: unknown) => {
        // Tried again with the next new location.
        for (const l of fresh) this.#locations.delete(l);
        this.#log.error({ err }, "publishing drop locations failed");
      })
      .finally(() => {
        this.#publishing = false;
      });
  }

  /** Mode "watched": reports exactly the namespaces of these devices. */
  watchDevices(devices: readonly AttachedDevice[]): void {
    if (!this.#program.watchedOnly) return;
    const want = new Set(devices.map((d) => d.netnsCookie).filter((c) => c !== 0n));
    for (const c of want) if (!this.#watched.has(c)) this.#program.watchNetns(c);
    for (const c of this.#watched) if (!want.has(c)) this.#program.unwatchNetns(c);
    this.#watched = want;
    this.#log.debug({ namespaces: want.size }, "drop namespaces updated");
  }

  /** Takes the last count, detaches and unloads the drop program. Safe to call again. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#registry?.close().catch((err: unknown) => {
      this.#log.error({ err }, "closing the kernel table watch failed");
    });
    try {
      this.#syncCount();
    } finally {
      this.#program.close();
    }
  }
}

/**
 * Starts kernel drop reporting for a collector whose trace program exposes its maps
 * (`mapFd`); the drop object is looked up next to the trace object. A program without
 * maps (a test double) gets none. A kernel or object that cannot run the drop program
 * (no BTF, no tp_btf, object missing) leaves the collector tracing without drops: the
 * failure is logged and `drop_program_loaded` stays 0.
 */
export function startKernelDrops(
  config: { drops: DropsMode; nodeName: string; captureLen: number; bpfObjectPath: string },
  trace: Partial<TraceMaps>,
  metrics: Metrics,
  log: Logger,
): KernelDrops | undefined {
  const loaded = metrics.gauge(
    "drop_program_loaded",
    "1 while the kernel drop program (skb:kfree_skb) is attached, else 0 (--drops off or it failed to load).",
  );
  loaded.set(0);
  if (trace.mapFd === undefined) return undefined;
  const mapFd = trace.mapFd.bind(trace);
  try {
    const drops = KernelDrops.start({
      mode: config.drops,
      node: config.nodeName,
      captureLen: config.captureLen,
      objectPath: join(dirname(config.bpfObjectPath), "drop.bpf.o"),
      trace: { mapFd },
      metrics,
      log,
    });
    if (drops !== undefined) loaded.set(1);
    return drops;
  } catch (err) {
    log.error(
      { err, mode: config.drops },
      "kernel drop program not loaded; no kernel drops reported",
    );
    return undefined;
  }
}
