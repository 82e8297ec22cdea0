/**
 * The collector's side of recordings: answers `periscope.ctl.<node>.record` requests
 * (start / renew / stop, JSON), keeps the kernel capture filters equal to the recordings
 * whose lease is current, attaches the capture program to the collector's devices only
 * while at least one recording is active, drains its ring buffer and publishes each
 * recording's packets in batches on `periscope.capture.<recording>.<node>`. A recording
 * whose lease runs out (the recorder is gone) is removed within a lease check interval.
 */
import { CaptureProgram, type RecordSink } from "@periscope/bpf";
import {
  type Bus,
  CAPTURE_BATCH_HEADER,
  CAPTURE_PACKET_HEADER,
  CaptureBatchWriter,
  captureSubject,
  PACKET_L3,
  type RecordControl,
  type RecordFilterSpec,
  type RecordReply,
  recordControlSubject,
} from "@periscope/bus";
import { parseIp } from "@periscope/model";
import type { Logger, Metrics } from "@periscope/telemetry";
import {
  CAPTURE_FIXED_SIZE,
  CAPTURE_MAX_FILTERS,
  CAPTURE_MAX_LEN,
  CAPTURE_MAX_RECORDINGS,
  FLAG_L3,
  type KernelCaptureFilter,
  RECORD_TYPE_CAPTURE,
} from "@periscope/wire";
import type { AttachedDevice } from "./attacher.ts";
import type { InterfaceTarget } from "./config.ts";

/** What the service needs from a loaded capture program (CaptureProgram). */
export interface CaptureSource {
  attach(target: InterfaceTarget): void;
  detach(target: InterfaceTarget): void;
  setFilters(filters: readonly KernelCaptureFilter[], capLen: ReadonlyMap<number, number>): void;
  drainInto(sink: RecordSink, max?: number): number;
  readLost(): bigint[];
  close(): void;
}

/** Options of {@link CaptureService}. */
export interface CaptureServiceOptions {
  readonly nc: Bus["nc"];
  readonly node: string;
  /** Loads the capture program when the first recording starts. */
  readonly load: () => CaptureSource;
  /** Devices the trace program is attached to now. */
  readonly devices: () => readonly AttachedDevice[];
  /** CLOCK_REALTIME − CLOCK_BOOTTIME, ns. */
  readonly bootToRealtimeNs: () => bigint;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Drain period while recording, ms (default 20). */
  readonly drainMs?: number;
  /** Lease check period, ms (default 250). */
  readonly leaseCheckMs?: number;
  /** Removes capture filters an earlier run left on a device (killed during a recording). */
  readonly removeStale?: (target: InterfaceTarget) => number;
}

interface Recording {
  readonly id: string;
  readonly slot: number;
  readonly filters: readonly KernelCaptureFilter[];
  readonly capLen: number;
  readonly leaseMs: number;
  readonly subject: string;
  leaseUntil: number;
  seq: number;
  published: number;
  bytes: number;
  kernelLostBase: bigint;
  kernelLost: number;
  sendLost: number;
  readonly batch: CaptureBatchWriter;
}

/** Batches are published once they hold this many bytes (far below NATS' 1 MiB limit). */
const BATCH_BYTES = 32 * 1024;
/** Records drained per tick at most. */
const DRAIN_MAX = 8192;
const ID_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;

function bad(field: string, detail: string): never {
  throw new Error(`${field}: ${detail}`);
}

/** Parses and checks one filter of a start request into its kernel form (slot filled in). */
export function kernelFilter(f: RecordFilterSpec, i: number, slot: number): KernelCaptureFilter {
  const at = `filters[${i}]`;
  if (typeof f !== "object" || f === null) bad(at, "not an object");
  if (f.family !== 4 && f.family !== 6) bad(`${at}.family`, "must be 4 or 6");
  const width = f.family === 4 ? 32 : 128;
  const addr = (field: "srcAddr" | "dstAddr"): Uint8Array => {
    const a = typeof f[field] === "string" ? parseIp(f[field]) : undefined;
    if (a === undefined || a.length * 8 !== width)
      bad(`${at}.${field}`, `not an IPv${f.family} address`);
    return a;
  };
  const int = (field: keyof RecordFilterSpec, max: number): number => {
    const v = f[field];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
      bad(`${at}.${field}`, `must be an integer in 0..${max}`);
    }
    return v;
  };
  return {
    family: f.family,
    proto: int("proto", 255),
    srcAddr: addr("srcAddr"),
    srcPrefix: int("srcPrefix", width),
    dstAddr: addr("dstAddr"),
    dstPrefix: int("dstPrefix", width),
    srcPort: int("srcPort", 65535),
    dstPort: int("dstPort", 65535),
    slot,
  };
}

/** Recording control and packet publishing for one collector. */
export class CaptureService {
  readonly #o: CaptureServiceOptions;
  readonly #recordings = new Map<string, Recording>();
  readonly #sub: ReturnType<Bus["nc"]["subscribe"]>;
  readonly #leaseTimer: ReturnType<typeof setInterval>;
  #drainTimer: ReturnType<typeof setInterval> | undefined;
  #program: CaptureSource | undefined;
  #attached = new Map<string, InterfaceTarget>();
  #closed = false;
  readonly #packets;
  readonly #lost;
  readonly #active;
  readonly #requests;

  constructor(o: CaptureServiceOptions) {
    this.#o = o;
    this.#packets = o.metrics.counter(
      "capture_packets_total",
      "Packets published to recordings (a packet matching two recordings counts twice).",
    );
    this.#lost = o.metrics.counter(
      "capture_lost_total",
      "Recording packets lost on this node, by where: kernel (capture ring buffer full), publish (NATS refused).",
      ["where"],
    );
    this.#active = o.metrics.gauge("capture_recordings", "Recordings active on this node.");
    this.#requests = o.metrics.counter(
      "capture_requests_total",
      "Recording control requests, by result (ok, refused, expired).",
      ["result"],
    );
    this.#active.set(0);
    this.#sub = o.nc.subscribe(recordControlSubject(o.node), {
      callback: (err, msg) => {
        if (err) {
          o.log.error({ err }, "record control subscription failed");
          return;
        }
        const reply = this.handle(msg.data);
        if (msg.reply) msg.respond(new TextEncoder().encode(JSON.stringify(reply)));
      },
    });
    this.#leaseTimer = setInterval(() => this.#expire(), o.leaseCheckMs ?? 250);
  }

  /** Recording ids active now. */
  active(): string[] {
    return [...this.#recordings.keys()];
  }

  /** Handles one control request body; never throws. */
  handle(body: Uint8Array): RecordReply {
    const node = this.#o.node;
    let req: RecordControl;
    try {
      req = JSON.parse(new TextDecoder().decode(body)) as RecordControl;
      if (typeof req !== "object" || req === null) throw new Error("request: not a JSON object");
      if (typeof req.id !== "string" || !ID_RE.test(req.id))
        bad("id", "must match [a-z0-9-]{1,64}");
    } catch (err) {
      this.#requests.inc({ result: "refused" });
      return { ok: false, node, error: err instanceof Error ? err.message : String(err) };
    }
    try {
      const reply = this.#apply(req);
      this.#requests.inc({ result: reply.ok ? "ok" : "refused" });
      return reply;
    } catch (err) {
      this.#requests.inc({ result: "refused" });
      const error = err instanceof Error ? err.message : String(err);
      this.#o.log.warn({ error, op: req.op, id: req.id }, "record request refused");
      return { ok: false, node, error };
    }
  }

  #apply(req: RecordControl): RecordReply {
    const node = this.#o.node;
    if (this.#closed) return { ok: false, node, error: "collector is stopping" };
    const rec = this.#recordings.get(req.id);
    if (req.op === "renew") {
      if (!rec) return { ok: false, node, error: `unknown recording ${req.id}`, unknown: true };
      rec.leaseUntil = performance.now() + rec.leaseMs;
      return { ok: true, node };
    }
    if (req.op === "stop") {
      if (!rec) return { ok: false, node, error: `unknown recording ${req.id}`, unknown: true };
      const stats = this.#remove(rec, "stopped");
      return { ok: true, node, stats };
    }
    if (req.op !== "start") bad("op", "must be start, renew or stop");
    if (rec) {
      rec.leaseUntil = performance.now() + rec.leaseMs;
      return { ok: true, node };
    }
    if (!Array.isArray(req.filters) || req.filters.length === 0) bad("filters", "none given");
    if (!Number.isInteger(req.capLen) || req.capLen < 1 || req.capLen > CAPTURE_MAX_LEN) {
      bad("capLen", `must be an integer in 1..${CAPTURE_MAX_LEN}`);
    }
    if (!Number.isInteger(req.leaseMs) || req.leaseMs < 100 || req.leaseMs > 600_000) {
      bad("leaseMs", "must be an integer in 100..600000");
    }
    const used = new Set([...this.#recordings.values()].map((r) => r.slot));
    let slot = 0;
    while (used.has(slot)) slot++;
    if (slot >= CAPTURE_MAX_RECORDINGS) {
      bad("id", `${CAPTURE_MAX_RECORDINGS} recordings already active on this node`);
    }
    const filters = req.filters.map((f, i) => kernelFilter(f, i, slot));
    const inUse = [...this.#recordings.values()].reduce((n, r) => n + r.filters.length, 0);
    if (inUse + filters.length > CAPTURE_MAX_FILTERS) {
      bad("filters", `${CAPTURE_MAX_FILTERS} filters at most on a node, ${inUse} in use`);
    }
    const program = this.#ensureProgram();
    const next: Recording = {
      id: req.id,
      slot,
      filters,
      capLen: req.capLen,
      leaseMs: req.leaseMs,
      subject: captureSubject(req.id, node),
      leaseUntil: performance.now() + req.leaseMs,
      seq: 0,
      published: 0,
      bytes: 0,
      kernelLostBase: program.readLost()[slot] ?? 0n,
      kernelLost: 0,
      sendLost: 0,
      batch: new CaptureBatchWriter(),
    };
    this.#recordings.set(req.id, next);
    try {
      this.#writeFilters();
      this.#syncAttach();
    } catch (err) {
      this.#recordings.delete(req.id);
      this.#writeFilters();
      this.#syncAttach();
      throw err;
    }
    this.#active.set(this.#recordings.size);
    this.#o.log.info(
      { id: req.id, slot, filters: filters.length, capLen: req.capLen },
      "recording started",
    );
    return { ok: true, node };
  }

  #ensureProgram(): CaptureSource {
    this.#program ??= this.#o.load();
    return this.#program;
  }

  #writeFilters(): void {
    const all = [...this.#recordings.values()];
    this.#program?.setFilters(
      all.flatMap((r) => r.filters),
      new Map(all.map((r) => [r.slot, r.capLen])),
    );
  }

  /** Attaches to every device while a recording is active; detaches from all otherwise. */
  #syncAttach(): void {
    const program = this.#program;
    if (!program) return;
    const want = new Map<string, InterfaceTarget>();
    if (this.#recordings.size > 0) for (const d of this.#o.devices()) want.set(d.name, d.target);
    for (const [name, t] of this.#attached) {
      if (want.has(name)) continue;
      try {
        program.detach(t);
      } catch (err) {
        this.#o.log.warn({ err, device: name }, "capture detach failed");
      }
      this.#attached.delete(name);
    }
    for (const [name, t] of want) {
      if (this.#attached.has(name)) continue;
      try {
        program.attach(t);
        this.#attached.set(name, t);
      } catch (err) {
        this.#o.log.warn(
          { err, device: name },
          "capture attach failed; retried on the next change",
        );
      }
    }
    if (this.#recordings.size > 0 && this.#drainTimer === undefined) {
      this.#drainTimer = setInterval(() => this.drainOnce(), this.#o.drainMs ?? 20);
    } else if (this.#recordings.size === 0 && this.#drainTimer !== undefined) {
      clearInterval(this.#drainTimer);
      this.#drainTimer = undefined;
    }
  }

  /** The collector's device set changed: follow it while recording. */
  devicesChanged(): void {
    if (this.#recordings.size > 0) this.#syncAttach();
  }

  /**
   * A device was attached: capture filters of an earlier run that died during a recording
   * are removed from it (unless a recording of this run uses the device), then the device
   * is followed like any change.
   */
  deviceAttached(dev: AttachedDevice): void {
    if (!this.#attached.has(dev.name) && this.#o.removeStale !== undefined) {
      try {
        const n = this.#o.removeStale(dev.target);
        if (n > 0)
          this.#o.log.warn({ device: dev.name, filters: n }, "stale capture filters removed");
      } catch (err) {
        this.#o.log.warn({ err, device: dev.name }, "looking for stale capture filters failed");
      }
    }
    this.devicesChanged();
  }

  /** Drains the capture ring once and publishes full batches; returns the records read. */
  drainOnce(): number {
    const program = this.#program;
    if (!program) return 0;
    const bySlot: (Recording | undefined)[] = [];
    for (const r of this.#recordings.values()) bySlot[r.slot] = r;
    const offset = this.#o.bootToRealtimeNs();
    let dv: DataView | undefined;
    let dvRing: Uint8Array | undefined;
    // Unix time of the tick's first record, once in BigInt; later records by their distance
    // from it (small: exact in a double), so no BigInt per packet.
    let baseHi = -1;
    let baseLo = 0;
    let baseSec = 0;
    let baseNsec = 0;
    const sink: RecordSink = {
      addFrom: (ring, off, len) => {
        if (ring !== dvRing) {
          dvRing = ring;
          dv = new DataView(ring.buffer, ring.byteOffset, ring.byteLength);
        }
        const v = dv as DataView;
        const capLen = v.getUint32(off + 12, true);
        if (len !== CAPTURE_FIXED_SIZE + capLen || ring[off] !== RECORD_TYPE_CAPTURE) {
          this.#o.log.warn({ len, capLen, type: ring[off] }, "malformed capture record skipped");
          return;
        }
        const origLen = v.getUint32(off + 8, true);
        const lo = v.getUint32(off + 16, true);
        const hi = v.getUint32(off + 20, true);
        if (baseHi < 0) {
          const t = ((BigInt(hi) << 32n) | BigInt(lo)) + offset;
          baseSec = Number(t / 1_000_000_000n);
          baseNsec = Number(t % 1_000_000_000n);
          baseHi = hi;
          baseLo = lo;
        }
        const ns = baseNsec + (hi - baseHi) * 4294967296 + (lo - baseLo);
        const carry = Math.floor(ns / 1e9);
        const sec = baseSec + carry;
        const nsec = ns - carry * 1e9;
        const ifindex = v.getUint32(off + 24, true);
        const flags = ((ring[off + 3] ?? 0) & FLAG_L3) !== 0 ? PACKET_L3 : 0;
        const obs = ring[off + 1] ?? 0;
        const data = off + CAPTURE_FIXED_SIZE;
        for (let bits = v.getUint32(off + 28, true), slot = 0; bits !== 0; bits >>>= 1, slot++) {
          if ((bits & 1) === 0) continue;
          const rec = bySlot[slot];
          if (!rec) continue; // recording removed while its packets were in the ring
          const n = capLen > rec.capLen ? rec.capLen : capLen;
          rec.batch.append(sec, nsec, origLen, ifindex, flags, obs, ring, data, n);
          if (rec.batch.bytes >= BATCH_BYTES) this.#flush(rec, false);
        }
      },
    };
    let n = 0;
    try {
      n = program.drainInto(sink, DRAIN_MAX);
    } catch (err) {
      this.#o.log.error({ err }, "capture drain failed");
    }
    this.#syncLost(program);
    for (const r of this.#recordings.values()) if (r.batch.count > 0) this.#flush(r, false);
    return n;
  }

  #syncLost(program: CaptureSource): void {
    let lost: bigint[];
    try {
      lost = program.readLost();
    } catch (err) {
      this.#o.log.error({ err }, "reading capture losses failed");
      return;
    }
    for (const r of this.#recordings.values()) {
      const now = Number((lost[r.slot] ?? 0n) - r.kernelLostBase);
      if (now > r.kernelLost) this.#lost.inc({ where: "kernel" }, now - r.kernelLost);
      r.kernelLost = now;
    }
  }

  #flush(r: Recording, final: boolean): void {
    const count = r.batch.count;
    const bytes = r.batch.bytes;
    const payload = r.batch.finish(
      r.seq,
      r.published + r.sendLost,
      r.kernelLost + r.sendLost,
      final,
    );
    r.seq++;
    try {
      // A copy: nats.js holds on to the bytes until it writes them, the writer reuses them.
      this.#o.nc.publish(r.subject, payload.slice());
      r.published += count;
      r.bytes += bytes - CAPTURE_BATCH_HEADER - count * CAPTURE_PACKET_HEADER;
      this.#packets.inc(count);
    } catch (err) {
      r.sendLost += count;
      this.#lost.inc({ where: "publish" }, count);
      this.#o.log.warn({ err, id: r.id, packets: count }, "capture batch not published");
    }
  }

  /** Drains what is left for `r`, publishes its final batch and removes its filters. */
  #remove(r: Recording, why: "stopped" | "expired" | "shutdown") {
    this.drainOnce();
    this.#flush(r, true);
    this.#recordings.delete(r.id);
    try {
      this.#writeFilters();
    } catch (err) {
      this.#o.log.error({ err }, "writing capture filters failed");
    }
    this.#syncAttach();
    this.#active.set(this.#recordings.size);
    const stats = { packets: r.published, bytes: r.bytes, kernelLost: r.kernelLost };
    this.#o.log.info({ id: r.id, why, ...stats }, "recording ended");
    return stats;
  }

  #expire(): void {
    const now = performance.now();
    for (const r of [...this.#recordings.values()]) {
      if (now < r.leaseUntil) continue;
      this.#requests.inc({ result: "expired" });
      this.#o.log.warn(
        { id: r.id, leaseMs: r.leaseMs },
        "recording lease ran out; capture removed",
      );
      this.#remove(r, "expired");
    }
  }

  /** Ends every recording (final batches published), detaches and unloads. Safe twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#leaseTimer);
    for (const r of [...this.#recordings.values()]) this.#remove(r, "shutdown");
    if (!this.#sub.isClosed()) this.#sub.unsubscribe();
    if (this.#drainTimer !== undefined) clearInterval(this.#drainTimer);
    try {
      this.#program?.close();
    } catch (err) {
      this.#o.log.error({ err }, "closing the capture program failed");
    }
    this.#program = undefined;
  }
}

/** tc priority of the capture filters: one band before the trace program's. */
export function captureFilterPriority(tracePriority: number): number {
  return tracePriority - 0x4000;
}

/** Loads capture.bpf.o next to the trace object, at {@link captureFilterPriority}. */
export function loadCaptureProgram(traceObjectPath: string, tracePriority: number): CaptureSource {
  const objectPath = traceObjectPath.replace(/trace\.bpf\.o$/, "capture.bpf.o");
  return CaptureProgram.load({ objectPath, filterPriority: captureFilterPriority(tracePriority) });
}
