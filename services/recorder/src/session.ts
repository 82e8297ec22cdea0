/**
 * One recording across the cluster: asks every live collector to capture (start, then a
 * renew every third of the lease; a collector that appears later joins, one that forgot
 * the recording after a restart is asked again), receives their packet batches, writes one
 * pcap file per node (a second one, link type RAW, only if an L3 device's packets come),
 * counts what was lost where, applies the stop conditions and, at the end, stops the
 * collectors and closes the files.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import {
  BATCH_FINAL,
  type Bus,
  CAPTURE_BATCH_HEADER,
  CAPTURE_PACKET_HEADER,
  captureSubject,
  captureSubjectAll,
  PACKET_L3,
  type RecordControl,
  type RecordReply,
  recordControlSubject,
} from "@periscope/bus";
import type { Logger } from "@periscope/telemetry";
import { LINKTYPE_ETHERNET, LINKTYPE_RAW, PCAP_PACKET_HEADER, PcapFile } from "./pcap.ts";
import type { RecordingPlan } from "./validate.ts";

/** Counters of a recording (or of one node's part of it). */
export interface RecordingStats {
  packetsCaptured: number;
  bytesCaptured: number;
  packetsLost: number;
  bytesLost: number;
}

/** A file written by a recording, with its node's counters. */
export interface RecordedFile {
  readonly node: string;
  readonly path: string;
  readonly stats: RecordingStats;
}

/** Why a recording ended. */
export type StopReason = "client" | "packets" | "bytes" | "time" | "client-gone" | "shutdown";

/** Where losses are counted (recorder metrics). */
export type LossPlace = "collector" | "transport" | "write_queue" | "write";

/** What a session needs around it. */
export interface SessionDeps {
  readonly nc: Bus["nc"];
  /** Node names of the collectors alive now. */
  readonly nodes: () => string[];
  readonly storageDir: string;
  readonly leaseMs: number;
  readonly writeQueuePackets: number;
  readonly log: Logger;
  /** Called for every packet counted lost, with where. */
  readonly onLost?: (where: LossPlace, packets: number) => void;
  /** Time to wait for the first collector when none is known, ms (default 2000). */
  readonly discoverMs?: number;
  /** Resolves once the node list is complete (a heartbeat interval after watching began). */
  readonly nodesSettled?: () => Promise<void>;
}

interface NodeState {
  readonly node: string;
  /** Packets of this node accounted for (written, queued, lost): the next batch's firstIndex. */
  nextIndex: number;
  /** Losses the collector reported (cumulative). */
  collectorLost: number;
  final: boolean;
  files: Map<number, PcapFile>;
  stats: RecordingStats;
}

const REQUEST_TIMEOUT_MS = 2000;
const FINAL_WAIT_MS = 2000;

function zeroStats(): RecordingStats {
  return { packetsCaptured: 0, bytesCaptured: 0, packetsLost: 0, bytesLost: 0 };
}

/** A running recording. Create with {@link RecordingSession.start}. */
export class RecordingSession {
  readonly id: string;
  readonly plan: RecordingPlan;
  readonly #d: SessionDeps;
  readonly #nodes = new Map<string, NodeState>();
  /** Sanitized subject token → node name. */
  readonly #byToken = new Map<string, string>();
  readonly #startedMs = Date.now();
  readonly #unixtime = Math.floor(Date.now() / 1000);
  readonly #totals = zeroStats();
  #sub: ReturnType<Bus["nc"]["subscribe"]> | undefined;
  #renewTimer: ReturnType<typeof setInterval> | undefined;
  #timeTimer: ReturnType<typeof setTimeout> | undefined;
  #queued = 0;
  #writes: Promise<void> = Promise.resolve();
  #stopReason: StopReason | undefined;
  #stopping: Promise<RecordedFile[]> | undefined;
  #onStop: ((reason: StopReason) => void) | undefined;
  #pendingFiles: Promise<unknown>[] = [];
  readonly #stopped = Promise.withResolvers<void>();

  private constructor(id: string, plan: RecordingPlan, deps: SessionDeps) {
    this.id = id;
    this.plan = plan;
    this.#d = deps;
  }

  /**
   * Starts capturing on every live collector (waiting up to `discoverMs` for one when
   * none is known). Throws when no collector accepted the recording.
   * `onStop` is called once when a stop condition ends the recording.
   */
  static async start(
    plan: RecordingPlan,
    deps: SessionDeps,
    onStop: (reason: StopReason) => void,
  ): Promise<RecordingSession> {
    const id = `${plan.prefix}-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
    const s = new RecordingSession(id, plan, deps);
    s.#onStop = onStop;
    s.#sub = deps.nc.subscribe(captureSubjectAll(id), {
      callback: (err, msg) => {
        if (err) {
          deps.log.error({ err, id }, "capture subscription failed");
          return;
        }
        s.#onBatch(msg.subject, msg.data);
      },
    });
    try {
      await deps.nodesSettled?.();
      let nodes = deps.nodes();
      const deadline = performance.now() + (deps.discoverMs ?? 2000);
      while (nodes.length === 0 && performance.now() < deadline) {
        await Bun.sleep(50);
        nodes = deps.nodes();
      }
      if (nodes.length === 0) throw new Error("no collector is alive to capture on");
      const results = await Promise.all(nodes.map((n) => s.#join(n)));
      if (!results.some((ok) => ok)) {
        throw new Error(`no collector accepted the recording (${nodes.join(", ")})`);
      }
    } catch (err) {
      await s.stop("shutdown");
      throw err;
    }
    s.#renewTimer = setInterval(() => void s.#renew(), Math.max(100, deps.leaseMs / 3));
    if (plan.maxMs > 0) s.#timeTimer = setTimeout(() => s.#hit("time"), plan.maxMs);
    deps.log.info({ id, nodes: [...s.#nodes.keys()], plan }, "recording started");
    return s;
  }

  async #request(node: string, req: RecordControl): Promise<RecordReply> {
    const msg = await this.#d.nc.request(
      recordControlSubject(node),
      new TextEncoder().encode(JSON.stringify(req)),
      { timeout: REQUEST_TIMEOUT_MS },
    );
    return JSON.parse(new TextDecoder().decode(msg.data)) as RecordReply;
  }

  /** Asks `node` to capture; creates its Ethernet file. False when it refused or did not answer. */
  async #join(node: string): Promise<boolean> {
    const token = captureSubject("x", node).split(".").pop() ?? node;
    this.#byToken.set(token, node);
    try {
      const reply = await this.#request(node, {
        op: "start",
        id: this.id,
        filters: this.plan.filters,
        capLen: this.plan.capLen,
        leaseMs: this.#d.leaseMs,
      });
      if (!reply.ok) {
        this.#d.log.warn(
          { id: this.id, node, error: reply.error },
          "collector refused the recording",
        );
        return false;
      }
    } catch (err) {
      this.#d.log.warn({ id: this.id, node, err }, "collector did not answer the start request");
      return false;
    }
    const state = this.#node(node);
    if (!state.files.has(LINKTYPE_ETHERNET)) await this.#file(state, LINKTYPE_ETHERNET);
    return true;
  }

  #node(node: string): NodeState {
    let s = this.#nodes.get(node);
    if (!s) {
      s = {
        node,
        nextIndex: 0,
        collectorLost: 0,
        final: false,
        files: new Map(),
        stats: zeroStats(),
      };
      this.#nodes.set(node, s);
    }
    return s;
  }

  async #file(state: NodeState, linktype: number): Promise<PcapFile> {
    const existing = state.files.get(linktype);
    if (existing) return existing;
    const unique = randomBytes(4).toString("hex");
    const safeNode = state.node.replace(/[^A-Za-z0-9._-]/g, "_");
    const path = join(
      this.#d.storageDir,
      `${this.plan.prefix}_${this.#unixtime}_${unique}_${safeNode}.pcap`,
    );
    const creating = PcapFile.create(path, linktype);
    this.#pendingFiles.push(creating);
    const file = await creating;
    state.files.set(linktype, file);
    return file;
  }

  async #renew(): Promise<void> {
    if (this.#stopReason !== undefined) return;
    const live = new Set(this.#d.nodes());
    for (const n of live) if (!this.#nodes.has(n)) void this.#join(n); // joined the cluster later
    for (const [node, state] of this.#nodes) {
      if (state.final) continue;
      this.#request(node, { op: "renew", id: this.id })
        .then((r) => {
          if (!r.ok && r.unknown === true && this.#stopReason === undefined) {
            this.#d.log.warn(
              { id: this.id, node },
              "collector forgot the recording; starting it again",
            );
            void this.#join(node);
          }
        })
        .catch((err: unknown) => {
          this.#d.log.debug({ id: this.id, node, err }, "renew not answered");
        });
    }
  }

  #onBatch(subject: string, data: Uint8Array): void {
    const token = subject.split(".").pop() ?? "";
    const node = this.#byToken.get(token) ?? token;
    const state = this.#node(node);
    if (data.length < CAPTURE_BATCH_HEADER || data[0] !== 1) {
      this.#d.log.warn(
        { id: this.id, node, bytes: data.length },
        "undecodable capture batch dropped",
      );
      return;
    }
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const count = dv.getUint32(4, true);
    const firstIndex = Number(dv.getBigUint64(16, true));
    const lost = Number(dv.getBigUint64(24, true));
    if (firstIndex > state.nextIndex) {
      this.#lose(state, "transport", firstIndex - state.nextIndex, 0);
      state.nextIndex = firstIndex;
    }
    if (lost > state.collectorLost) {
      this.#lose(state, "collector", lost - state.collectorLost, 0);
      state.collectorLost = lost;
    }
    // Each entry ends in a pcap record (header + data): copied as is, 8 bytes after its start.
    const outs = new Map<number, { buf: Uint8Array; at: number; packets: number }>();
    const stopAt = this.#stopAtPackets();
    let capturedPackets = 0;
    let capturedBytes = 0;
    let at = CAPTURE_BATCH_HEADER;
    for (let i = 0; i < count; i++) {
      if (at + CAPTURE_PACKET_HEADER > data.length) break;
      const capLen = dv.getUint32(at + 16, true);
      const end = at + CAPTURE_PACKET_HEADER + capLen;
      if (end > data.length) {
        this.#d.log.warn({ id: this.id, node, packet: i }, "capture batch cut short");
        break;
      }
      state.nextIndex++;
      if (
        capturedPackets < stopAt &&
        !(
          this.plan.maxBytes > 0 && this.#totals.bytesCaptured + capturedBytes >= this.plan.maxBytes
        )
      ) {
        if (this.#queued + capturedPackets >= this.#d.writeQueuePackets) {
          this.#lose(state, "write_queue", 1, dv.getUint32(at + 20, true));
        } else {
          const link = ((data[at + 4] ?? 0) & PACKET_L3) !== 0 ? LINKTYPE_RAW : LINKTYPE_ETHERNET;
          let o = outs.get(link);
          if (!o) {
            o = { buf: new Uint8Array(data.length), at: 0, packets: 0 };
            outs.set(link, o);
          }
          o.buf.set(data.subarray(at + 8, end), o.at);
          o.at += end - at - 8;
          o.packets++;
          capturedPackets++;
          capturedBytes += capLen;
        }
      }
      at = end;
    }
    this.#queued += capturedPackets;
    state.stats.packetsCaptured += capturedPackets;
    state.stats.bytesCaptured += capturedBytes;
    this.#totals.packetsCaptured += capturedPackets;
    this.#totals.bytesCaptured += capturedBytes;
    const hit = this.#reached();
    if (hit) this.#hit(hit);
    if (((data[1] ?? 0) & BATCH_FINAL) !== 0) state.final = true;
    for (const [link, o] of outs) this.#enqueue(state, link, o.buf.subarray(0, o.at), o.packets);
  }

  /** Packets that may still be recorded before the packet limit (Infinity without one). */
  #stopAtPackets(): number {
    const max = this.plan.maxPackets;
    return max > 0 ? Math.max(0, max - this.#totals.packetsCaptured) : Number.POSITIVE_INFINITY;
  }

  #reached(): "packets" | "bytes" | undefined {
    const p = this.plan;
    if (p.maxPackets > 0 && this.#totals.packetsCaptured >= p.maxPackets) return "packets";
    if (p.maxBytes > 0 && this.#totals.bytesCaptured >= p.maxBytes) return "bytes";
    return undefined;
  }

  #hit(reason: StopReason): void {
    if (this.#stopReason !== undefined) return;
    this.#onStop?.(reason);
  }

  #lose(state: NodeState, where: LossPlace, packets: number, bytes: number): void {
    for (const s of [state.stats, this.#totals]) {
      s.packetsLost += packets;
      s.bytesLost += bytes;
    }
    this.#d.onLost?.(where, packets);
  }

  #enqueue(state: NodeState, link: number, records: Uint8Array, packets: number): void {
    this.#writes = this.#writes.then(async () => {
      try {
        const file = await this.#file(state, link);
        await file.writeRecords(records);
      } catch (err) {
        this.#d.log.error({ id: this.id, node: state.node, err }, "writing packets failed");
        const dv = new DataView(records.buffer, records.byteOffset, records.byteLength);
        let captured = 0;
        let orig = 0;
        for (
          let at = 0;
          at < records.length;
          at += PCAP_PACKET_HEADER + dv.getUint32(at + 8, true)
        ) {
          captured += dv.getUint32(at + 8, true);
          orig += dv.getUint32(at + 12, true);
        }
        for (const s of [state.stats, this.#totals]) {
          s.packetsCaptured -= packets;
          s.bytesCaptured -= captured;
        }
        this.#lose(state, "write", packets, orig);
      } finally {
        this.#queued -= packets;
      }
    });
  }

  /** Totals so far (all nodes). */
  stats(): RecordingStats {
    return { ...this.#totals };
  }

  /** Milliseconds since start. */
  elapsedMs(): number {
    return Date.now() - this.#startedMs;
  }

  /** Why it stopped, once it did. */
  get stopReason(): StopReason | undefined {
    return this.#stopReason;
  }

  /**
   * Stops: asks every collector to stop (each publishes its last batch first), waits for
   * those batches, writes what is queued and closes the files. Safe to call again.
   */
  stop(reason: StopReason): Promise<RecordedFile[]> {
    this.#stopping ??= this.#stop(reason).finally(() => this.#stopped.resolve());
    return this.#stopping;
  }

  /** Resolves once the recording has stopped and its files are closed. */
  whenStopped(): Promise<void> {
    return this.#stopped.promise;
  }

  async #stop(reason: StopReason): Promise<RecordedFile[]> {
    this.#stopReason = reason;
    clearInterval(this.#renewTimer);
    clearTimeout(this.#timeTimer);
    await Promise.all(
      [...this.#nodes.keys()].map((node) =>
        this.#request(node, { op: "stop", id: this.id }).catch((err: unknown) => {
          this.#d.log.warn({ id: this.id, node, err }, "collector did not answer the stop request");
        }),
      ),
    );
    const deadline = performance.now() + FINAL_WAIT_MS;
    while ([...this.#nodes.values()].some((n) => !n.final) && performance.now() < deadline) {
      await Bun.sleep(10);
    }
    if (this.#sub && !this.#sub.isClosed()) this.#sub.unsubscribe();
    await this.#writes;
    await Promise.allSettled(this.#pendingFiles);
    const out: RecordedFile[] = [];
    for (const state of this.#nodes.values()) {
      for (const file of state.files.values()) {
        await file.close().catch((err: unknown) => {
          this.#d.log.error({ id: this.id, path: file.path, err }, "closing a pcap file failed");
        });
        out.push({ node: state.node, path: file.path, stats: { ...state.stats } });
      }
    }
    this.#d.log.info(
      { id: this.id, reason, ...this.#totals, files: out.length },
      "recording stopped",
    );
    return out;
  }
}
