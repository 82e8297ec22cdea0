/**
 * Process events in the collector: drains the process program's ring buffer, puts
 * socket-owner records into the raw partition of their flow (through the framer) and
 * publishes lifecycle records (exec, fork, exit) in RawFrames on `periscope.proc.<node>`
 * (JetStream stream PERISCOPE_PROC). Every record is published or counted lost.
 */
import {
  CLOCK_BOOTTIME,
  cgroupV2Root,
  clockGettimeNs,
  DEFAULT_MAX_ARGS,
  NO_NETNS_COOKIE,
  netnsCookieOfPid,
  type ProcCounters,
  ProcProgram,
  type RecordSink,
} from "@periscope/bpf";
import { type Bus, ensureStream, subjects } from "@periscope/bus";
import { ConfigError } from "@periscope/config";
import type { Logger, Metrics } from "@periscope/telemetry";
import {
  decodeSockOwnerRecord,
  encodeRawFrame,
  PROC_EVENT,
  PROC_MAX_ARGS,
  RECORD_TYPE_PROC,
  RECORD_TYPE_SOCK_OWNER,
} from "@periscope/wire";
import { backfillSocketOwners } from "./proc-backfill.ts";

/** `--process-events` and `--max-args`. */
export interface ProcessEventsConfig {
  /** Load the process program and publish its records (`--process-events`, default on). */
  readonly enabled: boolean;
  /** Argument bytes copied per exec, 0..4096 (default 1024). */
  readonly maxArgs: number;
}

/**
 * `--process-events` when not given: on (measured overhead within noise, bench/process.ts;
 * socket owners only for the namespaces of attached devices).
 */
export const DEFAULT_PROCESS_EVENTS: "on" | "off" = "on";

/** Flag name → environment variable of the process-event settings. */
export const PROC_SETTINGS = {
  "process-events": "PERISCOPE_PROCESS_EVENTS",
  "max-args": "PERISCOPE_MAX_ARGS",
} as const;

/** What {@link parseProcessEvents} reads from the settings. */
export interface ProcSettingsReader {
  get(name: keyof typeof PROC_SETTINGS): string | undefined;
  source(name: keyof typeof PROC_SETTINGS): string;
  integer(name: "max-args", fallback: number, min: number, max: number): number;
}

/** @throws ConfigError naming the flag or variable with a bad value. */
export function parseProcessEvents(s: ProcSettingsReader): ProcessEventsConfig {
  const raw = (s.get("process-events") ?? DEFAULT_PROCESS_EVENTS).trim();
  if (raw !== "on" && raw !== "off") {
    throw new ConfigError(s.source("process-events"), `must be on or off, got "${raw}"`);
  }
  return Object.freeze({
    enabled: raw === "on",
    maxArgs: s.integer("max-args", DEFAULT_MAX_ARGS, 0, PROC_MAX_ARGS),
  });
}

/** The loaded process program as the collector uses it (`ProcProgram` from @periscope/bpf). */
export interface ProcSource {
  drainInto(sink: RecordSink, max?: number): number;
  counters(): ProcCounters;
  /** Socket owners only for these namespaces (cookies); empty: every namespace. */
  watchNetns?(cookies: Iterable<bigint>): void;
  close(): void;
}

/** Where socket-owner records go: the raw framer (partition = flow hash % partitions). */
export interface OwnerSink {
  addFrom(src: Uint8Array, offset: number, length: number): void;
  /** Records the kernel lost on `cpu`, reported with the next raw frame. */
  addKernelLost(cpu: number, count: bigint): void;
}

/** Settings of {@link ProcessEvents}. */
export interface ProcessEventsOptions {
  readonly source: ProcSource;
  readonly node: string;
  readonly bootId: string;
  readonly subject: string;
  readonly owners: OwnerSink;
  /** Publishes one frame; rejects when JetStream did not store it. */
  readonly publish: (subject: string, payload: Uint8Array, msgID: string) => Promise<void>;
  readonly bootToRealtimeNs: () => bigint;
  readonly realtimeNs: () => bigint;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Records per lifecycle frame at most (default 256). */
  readonly maxRecords?: number;
  /** Drain period and longest wait of a lifecycle record, ms (default 50). */
  readonly intervalMs?: number;
  /** Lifecycle frames held while NATS is slow (default 256); beyond, records are counted lost. */
  readonly maxQueued?: number;
  /** Called when a drain step fails (counted by the caller). */
  readonly onError?: (err: unknown) => void;
}

const KIND: Record<number, string> = {
  [PROC_EVENT.EXEC]: "exec",
  [PROC_EVENT.FORK]: "fork",
  [PROC_EVENT.EXIT]: "exit",
};

interface PendingFrame {
  readonly seq: bigint;
  readonly bytes: Uint8Array;
  readonly records: number;
}

/**
 * Drains the process ring every `intervalMs` and publishes. Lifecycle frames carry their
 * own seq (from 1 per boot), `records_before`, and the kernel's and the collector's losses
 * since the previous frame, like raw frames, so a reader counts holes exactly.
 */
export class ProcessEvents {
  readonly #o: ProcessEventsOptions;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #records: ReturnType<Metrics["counter"]>;
  readonly #lost: ReturnType<Metrics["counter"]>;
  readonly #filtered: ReturnType<Metrics["counter"]>;
  #seenFiltered = 0n;
  #batch: Uint8Array[] = [];
  #seq = 1n;
  #recordsBefore = 0n;
  #kernelLost = 0n;
  #collectorLost = 0n;
  #seenProcLost = 0n;
  #seenSockLost = 0n;
  readonly #queue: PendingFrame[] = [];
  #sending: Promise<void> | undefined;
  #closed = false;
  /** Sorted cookies last written to the namespace filter. */
  #watchedKey: string | undefined;
  #stats = { lifecycle: 0, owners: 0, published: 0, lost: 0, malformed: 0, filtered: 0 };

  constructor(o: ProcessEventsOptions) {
    this.#o = o;
    this.#records = o.metrics.counter(
      "process_records_total",
      "Records of the process program drained, by kind (exec, fork, exit, sock_owner, unknown).",
      ["kind"],
    );
    this.#lost = o.metrics.counter(
      "process_records_lost_total",
      "Process and socket-owner records lost, by where (kernel, queue, publish, shutdown).",
      ["where"],
    );
    this.#filtered = o.metrics.counter(
      "process_socket_owners_filtered_total",
      "Socket-owner records (UDP: datagrams) the kernel skipped: the socket's network namespace has no attached device.",
    );
    this.#timer = setInterval(() => this.step(), o.intervalMs ?? 50);
  }

  /**
   * Lifecycle and socket-owner records handled so far, published frames' records, losses,
   * and socket owners the kernel skipped for their namespace.
   */
  stats(): Readonly<{
    lifecycle: number;
    owners: number;
    published: number;
    lost: number;
    malformed: number;
    filtered: number;
  }> {
    return { ...this.#stats };
  }

  /**
   * Socket-owner records only for sockets in the network namespaces of these attached
   * devices (none attached: none; owners only join flows seen on attached devices); exec,
   * fork and exit are not filtered.
   * Called on every attach and detach. A failed map update is logged and counted.
   */
  watchDevices(devices: readonly { readonly netnsCookie: bigint }[]): void {
    if (this.#closed) return;
    const want = netnsOfDevices(devices);
    const key = [...want].sort().join(",");
    if (key === this.#watchedKey) return;
    try {
      this.#o.source.watchNetns?.(want);
      this.#watchedKey = key;
      this.#o.log.debug({ namespaces: want.size }, "process events: socket-owner namespaces");
    } catch (err) {
      this.#o.onError?.(err);
      this.#o.log.error({ err }, "process events: namespace filter not updated");
    }
  }

  /** One drain: records out of the ring, losses from the kernel counters, a frame sealed. */
  step(): void {
    if (this.#closed) return;
    try {
      this.#o.source.drainInto(this.#sink);
      this.#syncLosses();
      this.#seal();
    } catch (err) {
      this.#o.onError?.(err);
      this.#o.log.error({ err }, "process events: drain failed");
    }
  }

  readonly #sink: RecordSink = {
    addFrom: (ring, offset, length) => {
      const type = ring[offset];
      if (type === RECORD_TYPE_SOCK_OWNER) {
        this.#o.owners.addFrom(ring, offset, length);
        this.#stats.owners++;
        this.#records.inc({ kind: "sock_owner" });
        return;
      }
      if (type === RECORD_TYPE_PROC) {
        this.#batch.push(ring.slice(offset, offset + length));
        this.#stats.lifecycle++;
        this.#records.inc({ kind: KIND[ring[offset + 1] ?? 0] ?? "unknown" });
        if (this.#batch.length >= (this.#o.maxRecords ?? 256)) this.#seal();
        return;
      }
      // Published anyway: the reader names what is wrong with it.
      this.#batch.push(ring.slice(offset, offset + length));
      this.#stats.malformed++;
      this.#records.inc({ kind: "unknown" });
    },
  };

  #syncLosses(): void {
    const c = this.#o.source.counters();
    if (c.procLost > this.#seenProcLost) {
      const d = c.procLost - this.#seenProcLost;
      this.#kernelLost += d;
      this.#lostMetric("kernel", Number(d));
    }
    this.#seenProcLost = c.procLost;
    if (c.sockLost > this.#seenSockLost) {
      const d = c.sockLost - this.#seenSockLost;
      // The per-CPU split is not kept for socket-owner losses: all on CPU 0.
      this.#o.owners.addKernelLost(0, d);
      this.#lostMetric("kernel", Number(d));
    }
    this.#seenSockLost = c.sockLost;
    if (c.sockFiltered > this.#seenFiltered) {
      const d = c.sockFiltered - this.#seenFiltered;
      this.#stats.filtered += Number(d);
      this.#filtered.inc(Number(d));
    }
    this.#seenFiltered = c.sockFiltered;
  }

  #lostMetric(where: string, n: number): void {
    this.#stats.lost += n;
    this.#lost.inc({ where }, n);
  }

  /** Seals the batch (or a loss with no records) into a frame and queues it. */
  #seal(): void {
    if (this.#batch.length === 0 && this.#kernelLost === 0n && this.#collectorLost === 0n) return;
    const records = this.#batch;
    this.#batch = [];
    const seq = this.#seq++;
    const bytes = encodeRawFrame({
      nodeName: this.#o.node,
      bootId: this.#o.bootId,
      seq,
      partition: 0,
      bootToRealtimeNs: this.#o.bootToRealtimeNs(),
      kernelLost: this.#kernelLost,
      collectorLost: this.#collectorLost,
      records,
      sealedUnixNs: this.#o.realtimeNs(),
      recordsBefore: this.#recordsBefore,
    });
    this.#recordsBefore += BigInt(records.length) + this.#kernelLost + this.#collectorLost;
    this.#kernelLost = 0n;
    this.#collectorLost = 0n;
    if (this.#queue.length >= (this.#o.maxQueued ?? 256)) {
      // The frame's seq is skipped: readers see the hole and count it from records_before.
      this.#lostMetric("queue", records.length);
      return;
    }
    this.#queue.push({ seq, bytes, records: records.length });
    this.#sending ??= this.#send().finally(() => {
      this.#sending = undefined;
    });
  }

  async #send(): Promise<void> {
    for (;;) {
      const f = this.#queue[0];
      if (f === undefined) return;
      try {
        await this.#o.publish(this.#o.subject, f.bytes, `${this.#o.bootId}-proc-${f.seq}`);
        this.#stats.published += f.records;
        this.#queue.shift();
      } catch (err) {
        if (this.#closed) {
          this.#queue.shift();
          this.#lostMetric("publish", f.records);
          continue;
        }
        this.#o.log.warn({ err, seq: String(f.seq) }, "process frame not stored; retrying");
        await Bun.sleep(200);
      }
    }
  }

  /** Drains what is left, waits up to `timeoutMs` for the queue to go out, then stops. */
  async stop(timeoutMs = 3000): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#timer);
    this.step();
    this.#seal();
    const sending = this.#sending;
    if (sending !== undefined) await Promise.race([sending, Bun.sleep(timeoutMs)]);
    this.#closed = true;
    const left = this.#queue.splice(0).reduce((n, f) => n + f.records, 0);
    if (left > 0) this.#lostMetric("shutdown", left);
    this.#o.source.close();
  }
}

/**
 * The namespace filter for these devices: their netns cookies, or {@link NO_NETNS_COOKIE}
 * alone when none is attached (the kernel reports every namespace for an empty filter);
 * empty (every namespace) when one carries other namespaces' traffic (`carriesOthers`:
 * a host-side veth or bridge, owner-namespaces.ts).
 */
export function netnsOfDevices(
  devices: readonly { readonly netnsCookie: bigint; readonly carriesOthers?: boolean }[],
): Set<bigint> {
  if (devices.some((d) => d.carriesOthers === true)) return new Set();
  const want = new Set(devices.map((d) => d.netnsCookie).filter((c) => c !== 0n));
  return want.size > 0 ? want : new Set([NO_NETNS_COOKIE]);
}

/** What {@link startProcessEvents} needs from the collector. */
export interface ProcessEventsStart {
  readonly config: ProcessEventsConfig;
  readonly node: string;
  readonly bootId: string;
  readonly bus: Bus;
  readonly owners: OwnerSink;
  readonly clock: { bootToRealtimeNs(): bigint; realtimeNs(): bigint };
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly onError: (err: unknown) => void;
  /** Loads the program; defaults to ProcProgram.load with the configured max args. */
  readonly load?: () => ProcSource;
  /** Report connections older than the program from /proc (default true). */
  readonly backfill?: boolean;
  /**
   * The attached devices: socket owners are reported only for their namespaces (none
   * attached: none), backfilled ones included; without it, every namespace. Keep it in sync afterwards with
   * {@link ProcessEvents.watchDevices}.
   */
  readonly devices?: () => readonly { readonly netnsCookie: bigint }[];
}

/**
 * Loads the process program and starts publishing (undefined when `--process-events off`).
 * A program that cannot be loaded (no cgroup v2, no BTF, no privileges) is logged and
 * counted, and the collector runs without process events.
 */
export async function startProcessEvents(
  o: ProcessEventsStart,
): Promise<ProcessEvents | undefined> {
  if (!o.config.enabled) return undefined;
  // The namespace filter is in place before the hooks attach.
  const watched = o.devices === undefined ? new Set<bigint>() : netnsOfDevices(o.devices());
  let source: ProcSource;
  try {
    source = o.load?.() ?? ProcProgram.load({ maxArgs: o.config.maxArgs, netns: watched });
  } catch (err) {
    o.onError(err);
    o.log.error({ err }, "process program not loaded; no process events on this node");
    return undefined;
  }
  await ensureStream(o.bus, "proc").catch((err: unknown) => {
    o.onError(err);
    o.log.error({ err }, "process stream not available; frames are retried");
  });
  const js = o.bus.js();
  // After the hooks are attached: what the scan misses is caught by them.
  let backfilled = 0;
  if (o.backfill !== false) {
    try {
      let root: string | undefined;
      try {
        root = cgroupV2Root();
      } catch {
        root = undefined;
      }
      const found = backfillSocketOwners({
        ...(root !== undefined ? { cgroupRoot: root } : {}),
        netnsCookieOf: (pid) => netnsCookieOfPid(pid),
        nowBootNs: clockGettimeNs(CLOCK_BOOTTIME),
      });
      for (const r of found.records) {
        if (watched.size > 0 && !watched.has(decodeSockOwnerRecord(r).netnsCookie)) continue;
        o.owners.addFrom(r, 0, r.length);
        backfilled++;
      }
    } catch (err) {
      o.onError(err);
      o.log.error({ err }, "socket owner backfill from /proc failed");
    }
  }
  o.log.info(
    { maxArgs: o.config.maxArgs, backfilled, namespaces: watched.size },
    "process events on",
  );
  const events = new ProcessEvents({
    source,
    node: o.node,
    bootId: o.bootId,
    subject: subjects.proc(o.node),
    owners: o.owners,
    publish: async (subject, payload, msgID) => {
      await js.publish(subject, payload, { msgID, timeout: 2000 });
    },
    bootToRealtimeNs: () => o.clock.bootToRealtimeNs(),
    realtimeNs: () => o.clock.realtimeNs(),
    metrics: o.metrics,
    log: o.log,
    onError: o.onError,
  });
  if (o.devices !== undefined) events.watchDevices(o.devices());
  return events;
}
