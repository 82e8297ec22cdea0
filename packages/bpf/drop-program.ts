import { type Pointer, ptr } from "bun:ffi";
import { join } from "node:path";
import { DEFAULT_CAPTURE, MAX_CAPTURE } from "@periscope/model";
import { DROP_RODATA, TRACE_CONFIG_LAYOUT } from "@periscope/wire";
import {
  checkCaptureLen,
  findMap,
  loadObject,
  mapFdOf,
  openObject,
  rodataView,
  sumPerCpu,
} from "./bpf-object.ts";
import { BpfError, ERRNO } from "./errors.ts";
import { cString, isNull, lastErrno, libbpf } from "./ffi.ts";

/** Default object file: bpf/build/drop.bpf.o of this repository. */
export const DEFAULT_DROP_OBJECT = join(import.meta.dir, "..", "..", "bpf", "build", "drop.bpf.o");

/** Entries of the program's `drop_reasons` map; larger reason values are always reported. */
export const DROP_REASON_SLOTS = 1024;

/** BPF_ANY for bpf_map_update_elem. */
const BPF_ANY = 0;

/** Options for {@link DropProgram.load}. */
export interface DropLoadOptions {
  /** Path of drop.bpf.o; defaults to {@link DEFAULT_DROP_OBJECT}. */
  objectPath?: string;
  /** Packet bytes captured per drop (from the network header), 1..MAX_CAPTURE; default 128. */
  captureLen?: number;
  /** The trace program's `events` ring buffer: drops are written into it. */
  eventsFd: number;
  /** The trace program's `lost_events` per-CPU counter: failed writes are counted there. */
  lostEventsFd: number;
  /**
   * The trace program's `flow_gen`: reported drops are added to their flow's record
   * (drop counts, last reason) in the flow table in use. Without it flows get no drops.
   */
  flowGenFd?: number;
  /** Reason values to report; every value below DROP_REASON_SLOTS not listed is skipped. */
  reasons: Iterable<number>;
  /** Report only namespaces added with {@link DropProgram.watchNetns}. Default false (all). */
  watchedOnly?: boolean;
}

function writeRodata(obj: Pointer, captureLen: number, watchedOnly: boolean): void {
  const need = DROP_RODATA.netns_filter.offset + DROP_RODATA.netns_filter.size;
  const view = rodataView(obj, need, "the drop program's globals");
  view.setUint32(
    DROP_RODATA.cfg.offset + TRACE_CONFIG_LAYOUT.fields.capture_len.offset,
    captureLen,
    true,
  );
  view.setUint32(DROP_RODATA.netns_filter.offset, watchedOnly ? 1 : 0, true);
}

function reuse(obj: Pointer, name: string, fd: number): void {
  const rc = libbpf().bpf_map__reuse_fd(findMap(obj, name), fd);
  if (rc < 0) throw new BpfError(`bpf_map__reuse_fd(${name})`, -rc);
}

/**
 * The kernel drop program (drop.bpf.o, tp_btf/kfree_skb) loaded and attached. It writes
 * into the trace program's ring buffer and loss counter, so its records are drained with
 * the traces. Closing destroys the link and unloads the program. One JS thread only.
 */
export class DropProgram {
  #obj: Pointer | null;
  #link: Pointer | null;
  #reasonsFd: number;
  #netnsFd: number;
  #emittedFd: number;
  #locationsFd: number;
  /** Whether only watched namespaces are reported. */
  readonly watchedOnly: boolean;

  private constructor(obj: Pointer, watchedOnly: boolean) {
    this.#obj = obj;
    this.#link = null;
    this.watchedOnly = watchedOnly;
    this.#reasonsFd = mapFdOf(obj, "drop_reasons");
    this.#netnsFd = mapFdOf(obj, "watched_netns");
    this.#emittedFd = mapFdOf(obj, "drops_emitted");
    this.#locationsFd = mapFdOf(obj, "drop_locations");
  }

  /**
   * Opens the object, shares the trace program's maps, writes the tunables, loads,
   * fills the reason filter and attaches to skb:kfree_skb.
   * @throws BpfError naming the failing libbpf call; RangeError for bad options.
   */
  static load(opts: DropLoadOptions): DropProgram {
    const captureLen = checkCaptureLen(opts.captureLen ?? DEFAULT_CAPTURE, MAX_CAPTURE);
    const path = opts.objectPath ?? DEFAULT_DROP_OBJECT;
    const obj = openObject(path);
    let link: Pointer | null = null;
    try {
      writeRodata(obj, captureLen, opts.watchedOnly === true);
      reuse(obj, "events", opts.eventsFd);
      reuse(obj, "lost_events", opts.lostEventsFd);
      if (opts.flowGenFd !== undefined) reuse(obj, "flow_gen", opts.flowGenFd);
      loadObject(obj, path);
      const prog = libbpf().bpf_object__find_program_by_name(obj, cString("drop_kfree_skb"));
      if (isNull(prog)) throw new BpfError("find program drop_kfree_skb", ERRNO.ENOENT);
      const self = new DropProgram(obj, opts.watchedOnly === true);
      self.setReasons(opts.reasons);
      link = libbpf().bpf_program__attach(prog);
      if (isNull(link)) throw new BpfError("bpf_program__attach(tp_btf/kfree_skb)", lastErrno());
      self.#link = link;
      return self;
    } catch (err) {
      if (!isNull(link)) libbpf().bpf_link__destroy(link);
      libbpf().bpf_object__close(obj);
      throw err;
    }
  }

  #live(call: string): void {
    if (this.#obj === null) throw new BpfError(call, ERRNO.EBADF, "drop program is closed");
  }

  /** Replaces the set of reported reason values (values >= DROP_REASON_SLOTS are always reported). */
  setReasons(reasons: Iterable<number>): void {
    this.#live("setReasons");
    const keep = new Set(reasons);
    const key = new Uint32Array(1);
    const value = new Uint8Array(1);
    for (let r = 0; r < DROP_REASON_SLOTS; r++) {
      key[0] = r;
      value[0] = keep.has(r) ? 1 : 0;
      const rc = libbpf().bpf_map_update_elem(this.#reasonsFd, ptr(key), ptr(value), BPF_ANY);
      if (rc < 0) throw new BpfError(`bpf_map_update_elem(drop_reasons, ${r})`, -rc);
    }
  }

  /** Reports drops in the namespace with this cookie (when loaded with watchedOnly). */
  watchNetns(cookie: bigint): void {
    this.#live("watchNetns");
    const key = new BigUint64Array([cookie]);
    const value = new Uint8Array(1);
    const rc = libbpf().bpf_map_update_elem(this.#netnsFd, ptr(key), ptr(value), BPF_ANY);
    if (rc < 0) throw new BpfError("bpf_map_update_elem(watched_netns)", -rc);
  }

  /** Stops reporting the namespace with this cookie; unknown cookies are ignored. */
  unwatchNetns(cookie: bigint): void {
    this.#live("unwatchNetns");
    const key = new BigUint64Array([cookie]);
    const rc = libbpf().bpf_map_delete_elem(this.#netnsFd, ptr(key));
    if (rc < 0 && -rc !== ERRNO.ENOENT) {
      throw new BpfError("bpf_map_delete_elem(watched_netns)", -rc);
    }
  }

  /** Drop records written into the ring buffer since load, summed over CPUs. */
  readEmitted(): bigint {
    this.#live("readEmitted");
    return sumPerCpu(this.#emittedFd, "drops_emitted");
  }

  /** Kernel addresses that dropped packets since load (at most 1024 distinct ones). */
  locations(): bigint[] {
    this.#live("locations");
    const out: bigint[] = [];
    const key = new BigUint64Array(1);
    const next = new BigUint64Array(1);
    let rc = libbpf().bpf_map_get_next_key(this.#locationsFd, null, ptr(next));
    while (rc === 0) {
      out.push(next[0] ?? 0n);
      key[0] = next[0] ?? 0n;
      rc = libbpf().bpf_map_get_next_key(this.#locationsFd, ptr(key), ptr(next));
    }
    if (-rc !== ERRNO.ENOENT) throw new BpfError("bpf_map_get_next_key(drop_locations)", -rc);
    return out;
  }

  /** Detaches from skb:kfree_skb and unloads the program. Safe to call again. */
  close(): void {
    if (this.#link !== null) {
      libbpf().bpf_link__destroy(this.#link);
      this.#link = null;
    }
    if (this.#obj !== null) {
      libbpf().bpf_object__close(this.#obj);
      this.#obj = null;
    }
  }
}
