import { type Pointer, ptr } from "bun:ffi";
import { join } from "node:path";
import { DEFAULT_CAPTURE, MAX_CAPTURE } from "@periscope/model";
import { CT_ENTRY_LAYOUT, TRACE_CONFIG_LAYOUT } from "@periscope/wire";
import {
  checkCaptureLen,
  checkFilterPriority,
  checkRingBytes,
  loadObjectFile,
  mapFdOf,
  programFd,
  readPerCpu,
  rodataView,
  setMaxEntries,
  sumPerCpu,
} from "./bpf-object.ts";
import { BpfError, ERRNO } from "./errors.ts";
import { libbpf } from "./ffi.ts";
import { DEFAULT_FLOW_SPILL_BYTES, FlowTable, MAX_FLOW_ENTRIES } from "./flow-table.ts";
import { type PackedCopy, type RecordSink, RingBufferReader } from "./ring-buffer.ts";
import { CStruct, TEST_RUN_OPTS } from "./structs.ts";
import { type AttachTarget, type TcAttachment, targetKey, tcAttach, tcDetach } from "./tc.ts";
import {
  type ConnectionInfo,
  type ConnectionQuery,
  decodeConnectionEntry,
  encodeConnectionKey,
  encodeSettings,
  INITIAL_TRACE_SETTINGS,
  type TraceSettings,
} from "./trace-settings.ts";

export type { AttachTarget } from "./tc.ts";

/** Default object file: bpf/build/trace.bpf.o of this repository. */
export const DEFAULT_TRACE_OBJECT = join(
  import.meta.dir,
  "..",
  "..",
  "bpf",
  "build",
  "trace.bpf.o",
);
/** Default size of the `events` ring buffer, bytes. */
export const DEFAULT_RING_BUFFER_BYTES = 4 << 20;

/** Options for {@link TraceProgram.load}. */
export interface TraceLoadOptions {
  /** Path of trace.bpf.o; defaults to {@link DEFAULT_TRACE_OBJECT}. */
  objectPath?: string;
  /** Packet bytes captured per record, 1..MAX_CAPTURE; default DEFAULT_CAPTURE (128). */
  captureLen?: number;
  /** Ring buffer size in bytes: a power of two, multiple of the page size. Default 4 MiB. */
  ringBufferBytes?: number;
  /** Entries of the `conntrack` connection table (LRU). Default 65536. */
  ctEntries?: number;
  /**
   * tc priority (1..65535) for every filter this program installs, at handle 1, replacing
   * what is there; the default lets the kernel pick a free priority. A collector passes
   * one derived from its node name, so after a kill -9 its restart takes over its own
   * filters instead of adding duplicates.
   */
  filterPriority?: number;
  /**
   * Entries of each of the two flow table generations (preallocated per CPU, which
   * costs load time). Default 1: size it (e.g. `DEFAULT_FLOW_ENTRIES`) to use flow accounting.
   */
  flowEntries?: number;
  /** Size of the `flow_spill` ring buffer (packets of a full flow table), bytes. Default 1 MiB. */
  flowSpillBytes?: number;
}

/** Default size of the `conntrack` connection table, entries. */
export const DEFAULT_CT_ENTRIES = 65536;
/** Largest `conntrack` table {@link TraceProgram.load} accepts, entries. */
export const MAX_CT_ENTRIES = 1 << 24;

/** Result of one {@link TraceProgram.testRun}. */
export interface TestRunResult {
  /** Program return value (TC_ACT_UNSPEC = -1 for the trace programs). */
  retval: number;
  /** Average run time per repetition, nanoseconds. */
  durationNs: number;
}

function writeConfig(obj: Pointer, captureLen: number): void {
  const view = rodataView(obj, TRACE_CONFIG_LAYOUT.size, "struct pscope_trace_config");
  view.setUint32(TRACE_CONFIG_LAYOUT.fields.capture_len.offset, captureLen, true);
}

/**
 * The TC trace programs (trace.bpf.o) loaded into the kernel: attach them to
 * interfaces, drain their records, read their loss counter. Not thread-safe;
 * use from one JS thread.
 */
export class TraceProgram {
  #obj: Pointer | null;
  #ingressFd: number;
  #egressFd: number;
  #lostFd: number;
  #ring: RingBufferReader;
  #attached = new Map<string, TcAttachment>();
  #settings: TraceSettings = structuredClone(INITIAL_TRACE_SETTINGS) as TraceSettings;
  /** Packet bytes captured per record. */
  readonly captureLen: number;
  #filterPriority: number | undefined;
  #flowSizes = { entries: 1, spillBytes: DEFAULT_FLOW_SPILL_BYTES };
  #flowTable: FlowTable | undefined;

  private constructor(obj: Pointer, captureLen: number, ringBytes: number) {
    this.#obj = obj;
    this.captureLen = captureLen;
    this.#ingressFd = programFd(obj, "trace_ingress");
    this.#egressFd = programFd(obj, "trace_egress");
    this.#lostFd = mapFdOf(obj, "lost_events");
    this.#ring = new RingBufferReader(mapFdOf(obj, "events"), ringBytes);
  }

  /**
   * Opens the object, writes the tunables, sizes the ring buffer and loads it.
   * @throws BpfError naming the failing libbpf call; RangeError for bad options.
   */
  static load(opts: TraceLoadOptions = {}): TraceProgram {
    const captureLen = checkCaptureLen(opts.captureLen ?? DEFAULT_CAPTURE, MAX_CAPTURE);
    checkFilterPriority(opts.filterPriority);
    const ringBytes = checkRingBytes(opts.ringBufferBytes ?? DEFAULT_RING_BUFFER_BYTES);
    const path = opts.objectPath ?? DEFAULT_TRACE_OBJECT;
    const flowEntries = opts.flowEntries ?? 1;
    if (!Number.isInteger(flowEntries) || flowEntries < 1 || flowEntries > MAX_FLOW_ENTRIES) {
      throw new RangeError(
        `flowEntries must be an integer in 1..${MAX_FLOW_ENTRIES}, got ${flowEntries}`,
      );
    }
    const flowSpillBytes = checkRingBytes(opts.flowSpillBytes ?? DEFAULT_FLOW_SPILL_BYTES);
    return loadObjectFile(
      path,
      (obj) => {
        writeConfig(obj, captureLen);
        const ctEntries = opts.ctEntries ?? DEFAULT_CT_ENTRIES;
        if (!Number.isInteger(ctEntries) || ctEntries < 1 || ctEntries > MAX_CT_ENTRIES) {
          throw new RangeError(
            `ctEntries must be an integer in 1..${MAX_CT_ENTRIES}, got ${ctEntries}`,
          );
        }
        setMaxEntries(obj, "conntrack", ctEntries);
        setMaxEntries(obj, "events", ringBytes);
        setMaxEntries(obj, "flows_a", flowEntries);
        setMaxEntries(obj, "flows_b", flowEntries);
        setMaxEntries(obj, "flow_spill", flowSpillBytes);
      },
      (obj) => {
        const prog = new TraceProgram(obj, captureLen, ringBytes);
        prog.#filterPriority = opts.filterPriority;
        prog.#flowSizes = { entries: flowEntries, spillBytes: flowSpillBytes };
        return prog;
      },
    );
  }

  #live(call: string): void {
    if (this.#obj === null) throw new BpfError(call, ERRNO.EBADF, "trace program is closed");
  }

  /**
   * Attaches ingress + egress to `target` (clsact created when missing).
   * Attaching an already attached target does nothing.
   */
  attach(target: AttachTarget): void {
    this.#live("attach");
    const key = targetKey(target);
    if (this.#attached.has(key)) return;
    this.#attached.set(
      key,
      tcAttach(target, this.#ingressFd, this.#egressFd, this.#filterPriority),
    );
  }

  /** Removes both filters from `target` (and the clsact qdisc if we created it). */
  detach(target: AttachTarget): void {
    const key = targetKey(target);
    const a = this.#attached.get(key);
    if (a === undefined) return;
    tcDetach(a);
    this.#attached.delete(key);
  }

  /**
   * File descriptor of the map `name` of this object (owned by the program:
   * valid until {@link close}, do not close it).
   * @throws BpfError ENOENT when the object has no such map.
   */
  mapFd(name: string): number {
    this.#live("mapFd");
    const fd = mapFdOf(this.#obj as Pointer, name);
    if (fd < 0) throw new BpfError(`bpf_map__fd(${name})`, -fd);
    return fd;
  }

  /**
   * The flow accounting of these programs (off until its enable()); one per
   * program, closed with it.
   */
  flowTable(): FlowTable {
    this.#live("flowTable");
    this.#flowTable ??= new FlowTable({
      gen: this.mapFd("flow_gen"),
      tables: [this.mapFd("flows_a"), this.mapFd("flows_b")],
      spill: this.mapFd("flow_spill"),
      spillLost: this.mapFd("flow_spill_lost"),
      entries: this.#flowSizes.entries,
      spillBytes: this.#flowSizes.spillBytes,
    });
    return this.#flowTable;
  }

  /** Targets currently attached. */
  attachments(): AttachTarget[] {
    return [...this.#attached.values()].map((a) => ({ ...a.target }));
  }

  /**
   * Hands up to `max` pending records to `onRecord`, without blocking, and
   * returns the count. Each `bytes` is a copy (one ring buffer sample,
   * exactly 48 + cap_len bytes) the callback may keep.
   */
  drain(onRecord: (bytes: Uint8Array) => void, max?: number): number {
    this.#live("drain");
    return this.#ring.drain(onRecord, max);
  }

  /**
   * Hands up to `max` pending records to `sink` as views of the mapped ring (valid
   * only during each call), without blocking; returns the count.
   */
  drainInto(sink: RecordSink, max?: number): number {
    this.#live("drain");
    return this.#ring.drainInto(sink, max);
  }

  /**
   * File descriptor of the ingress or egress program (owned by this object; valid until
   * close()), for BPF_PROG_TEST_RUN from another thread of this process.
   */
  programFd(direction: "ingress" | "egress"): number {
    this.#live("programFd");
    return direction === "ingress" ? this.#ingressFd : this.#egressFd;
  }

  /**
   * Copies pending records in their ring layout (RawFrame's packed_records) into
   * `dst` at `offset`, at most `capBytes` bytes and `maxRecords` records, without
   * blocking. See RingBufferReader.copyPacked.
   */
  copyPacked(dst: Uint8Array, offset: number, capBytes: number, maxRecords: number): PackedCopy {
    this.#live("drain");
    return this.#ring.copyPacked(dst, offset, capBytes, maxRecords);
  }

  /** True when {@link copyPacked} runs natively (bun:ffi cc), false when it falls back to JS. */
  get nativeCopy(): boolean {
    return this.#ring.nativeCopy;
  }

  /** Records the kernel could not write to the ring buffer since load, one count per possible CPU. */
  readKernelLostPerCpu(): bigint[] {
    this.#live("readKernelLost");
    return [...readPerCpu(this.#lostFd, "lost_events")];
  }

  /** Settings in force (what {@link setSettings} last wrote). */
  get settings(): TraceSettings {
    return structuredClone(this.#settings);
  }

  /**
   * Merges `update` into the settings in force and writes them to the
   * `settings` map; packets see them from the next one on. Returns the
   * settings now in force.
   * @throws SettingsError naming a bad field (nothing is written then).
   */
  setSettings(update: Partial<TraceSettings>): TraceSettings {
    this.#live("setSettings");
    const next: TraceSettings = { ...this.#settings, ...update };
    const value = encodeSettings(next);
    const key = new Uint32Array(1);
    const rc = libbpf().bpf_map_update_elem(this.mapFd("settings"), ptr(key), ptr(value), 0);
    if (rc < 0) throw new BpfError("bpf_map_update_elem(settings)", -rc);
    this.#settings = structuredClone(next);
    return this.settings;
  }

  /** The connection-table entry of one connection (either direction), if present. */
  readConnection(q: ConnectionQuery): ConnectionInfo | undefined {
    this.#live("readConnection");
    const { key, srcIsLo } = encodeConnectionKey(q);
    const value = new Uint8Array(CT_ENTRY_LAYOUT.size);
    const rc = libbpf().bpf_map_lookup_elem(this.mapFd("conntrack"), ptr(key), ptr(value));
    if (rc === -ERRNO.ENOENT) return undefined;
    if (rc < 0) throw new BpfError("bpf_map_lookup_elem(conntrack)", -rc);
    return decodeConnectionEntry(q, srcIsLo, value);
  }

  /** Records the kernel could not write to the ring buffer, summed over CPUs, since load. */
  readKernelLost(): bigint {
    this.#live("readKernelLost");
    return sumPerCpu(this.#lostFd, "lost_events");
  }

  /**
   * Runs one program on `packet` (an Ethernet frame, >= 14 bytes) in the
   * kernel with BPF_PROG_TEST_RUN; each repetition emits a record.
   */
  testRun(packet: Uint8Array, repeat: number, direction: "ingress" | "egress"): TestRunResult {
    this.#live("testRun");
    if (packet.length < 14) throw new RangeError("packet must hold at least an Ethernet header");
    const fd = direction === "ingress" ? this.#ingressFd : this.#egressFd;
    const opts = new CStruct(TEST_RUN_OPTS.size);
    const data = packet.slice();
    opts.setPtr(TEST_RUN_OPTS.dataIn, ptr(data));
    opts.u32(TEST_RUN_OPTS.dataSizeIn, data.length);
    opts.i32(TEST_RUN_OPTS.repeat, Math.max(1, Math.trunc(repeat)));
    const rc = libbpf().bpf_prog_test_run_opts(fd, opts.ptr);
    if (rc < 0) throw new BpfError(`bpf_prog_test_run_opts(trace_${direction})`, -rc);
    return {
      retval: opts.i32(TEST_RUN_OPTS.retval),
      durationNs: opts.u32(TEST_RUN_OPTS.duration),
    };
  }

  /**
   * Detaches every target, frees the ring buffer and closes the object
   * (unloading the programs). Safe to call again. When some detach fails the
   * rest is still released and the first failure is thrown at the end.
   */
  close(): void {
    let first: unknown;
    for (const [key, a] of this.#attached) {
      try {
        tcDetach(a);
      } catch (err) {
        const errno = err instanceof BpfError ? err.errno : 0;
        first ??= new BpfError(`detach ${key}`, errno, String(err), { cause: err });
      }
    }
    this.#attached.clear();
    this.#ring.close();
    this.#flowTable?.close();
    this.#flowTable = undefined;
    if (this.#obj !== null) {
      libbpf().bpf_object__close(this.#obj);
      this.#obj = null;
    }
    if (first !== undefined) throw first;
  }
}
