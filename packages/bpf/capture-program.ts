import { type Pointer, ptr } from "bun:ffi";
import { join } from "node:path";
import {
  CAPTURE_FILTERS_LAYOUT,
  CAPTURE_MAX_RECORDINGS,
  encodeCaptureFilters,
  type KernelCaptureFilter,
} from "@periscope/wire";
import {
  checkFilterPriority,
  checkRingBytes,
  loadObjectFile,
  mapFdOf,
  programFd,
  setMaxEntries,
  sumPerCpu,
} from "./bpf-object.ts";
import { BpfError, ERRNO } from "./errors.ts";
import { libbpf } from "./ffi.ts";
import { ifNameToIndex, withNetns } from "./netns.ts";
import { type RecordSink, RingBufferReader } from "./ring-buffer.ts";
import { BPF_TC_EGRESS, BPF_TC_INGRESS, tcHook, tcOpts } from "./structs.ts";
import { type AttachTarget, type TcAttachment, targetKey, tcAttach, tcDetach } from "./tc.ts";

/** Default object file: bpf/build/capture.bpf.o of this repository. */
export const DEFAULT_CAPTURE_OBJECT = join(
  import.meta.dir,
  "..",
  "..",
  "bpf",
  "build",
  "capture.bpf.o",
);
/** Default size of the `captures` ring buffer, bytes. */
export const DEFAULT_CAPTURE_RING_BYTES = 8 << 20;

/**
 * Removes capture filters a previous run left at `priority` (handle 1) on `target`, both
 * hooks: what a collector killed during a recording leaves behind. Returns how many were
 * removed; a device, hook or filter that is not there counts as nothing to remove.
 */
export function removeStaleCaptureFilters(target: AttachTarget, priority: number): number {
  return withNetns(target.netns, () => {
    let ifindex: number;
    try {
      ifindex = ifNameToIndex(target.ifname);
    } catch {
      return 0;
    }
    let removed = 0;
    for (const point of [BPF_TC_INGRESS, BPF_TC_EGRESS]) {
      const rc = libbpf().bpf_tc_detach(
        tcHook(ifindex, point).ptr,
        tcOpts({ handle: 1, priority }).ptr,
      );
      if (rc === 0) removed++;
    }
    return removed;
  });
}

/** Options for {@link CaptureProgram.load}. */
export interface CaptureLoadOptions {
  /** Path of capture.bpf.o; defaults to {@link DEFAULT_CAPTURE_OBJECT}. */
  objectPath?: string;
  /** Ring buffer size: a power of two, multiple of the page size. Default 8 MiB. */
  ringBufferBytes?: number;
  /** tc priority (1..65535) of its filters, at handle 1; default: the kernel picks. */
  filterPriority?: number;
}

/**
 * The recorder capture programs (capture.bpf.o) loaded: attach them to devices, write
 * the filters of the active recordings, drain the capture records, read the per-recording
 * kernel loss counts. One JS thread only.
 */
export class CaptureProgram {
  #obj: Pointer | null;
  readonly #ingressFd: number;
  readonly #egressFd: number;
  readonly #filtersFd: number;
  readonly #lostFd: number;
  readonly #ring: RingBufferReader;
  readonly #attached = new Map<string, TcAttachment>();
  readonly #priority: number | undefined;

  private constructor(obj: Pointer, ringBytes: number, priority: number | undefined) {
    this.#obj = obj;
    this.#priority = priority;
    this.#ingressFd = programFd(obj, "capture_ingress");
    this.#egressFd = programFd(obj, "capture_egress");
    this.#filtersFd = mapFdOf(obj, "capture_filters");
    this.#lostFd = mapFdOf(obj, "capture_lost");
    this.#ring = new RingBufferReader(mapFdOf(obj, "captures"), ringBytes);
  }

  /**
   * Opens, sizes and loads the object (no filters: nothing is captured yet).
   * @throws BpfError naming the failing libbpf call; RangeError for bad options.
   */
  static load(opts: CaptureLoadOptions = {}): CaptureProgram {
    const ringBytes = checkRingBytes(opts.ringBufferBytes ?? DEFAULT_CAPTURE_RING_BYTES);
    const fp = checkFilterPriority(opts.filterPriority);
    const path = opts.objectPath ?? DEFAULT_CAPTURE_OBJECT;
    return loadObjectFile(
      path,
      (obj) => setMaxEntries(obj, "captures", ringBytes),
      (obj) => new CaptureProgram(obj, ringBytes, fp),
    );
  }

  #live(call: string): void {
    if (this.#obj === null) throw new BpfError(call, ERRNO.EBADF, "capture program is closed");
  }

  /** Attaches ingress + egress to `target`; an attached target is left as is. */
  attach(target: AttachTarget): void {
    this.#live("attach");
    const key = targetKey(target);
    if (this.#attached.has(key)) return;
    this.#attached.set(key, tcAttach(target, this.#ingressFd, this.#egressFd, this.#priority));
  }

  /** Removes its filters from `target` (a device or netns that is gone counts as detached). */
  detach(target: AttachTarget): void {
    const key = targetKey(target);
    const a = this.#attached.get(key);
    if (a === undefined) return;
    this.#attached.delete(key);
    tcDetach(a);
  }

  /** Targets currently attached. */
  attachments(): AttachTarget[] {
    return [...this.#attached.values()].map((a) => ({ ...a.target }));
  }

  /**
   * Replaces the filters in force (one map write; packets see them from the next one on).
   * `capLen` gives each used slot's capture length.
   */
  setFilters(filters: readonly KernelCaptureFilter[], capLen: ReadonlyMap<number, number>): void {
    this.#live("setFilters");
    const value = encodeCaptureFilters(filters, capLen);
    if (value.length !== CAPTURE_FILTERS_LAYOUT.size) throw new Error("capture filters size");
    const key = new Uint32Array(1);
    const rc = libbpf().bpf_map_update_elem(this.#filtersFd, ptr(key), ptr(value), 0);
    if (rc < 0) throw new BpfError("bpf_map_update_elem(capture_filters)", -rc);
  }

  /** Hands up to `max` pending records to `sink` (views valid during each call); returns the count. */
  drainInto(sink: RecordSink, max?: number): number {
    this.#live("drain");
    return this.#ring.drainInto(sink, max);
  }

  /** Hands up to `max` pending records (copies) to `onRecord`; returns the count. */
  drain(onRecord: (bytes: Uint8Array) => void, max?: number): number {
    this.#live("drain");
    return this.#ring.drain(onRecord, max);
  }

  /** Records lost for a full ring buffer since load, per recording slot (summed over CPUs). */
  readLost(): bigint[] {
    this.#live("readLost");
    const out: bigint[] = [];
    for (let slot = 0; slot < CAPTURE_MAX_RECORDINGS; slot++) {
      out.push(sumPerCpu(this.#lostFd, "capture_lost", slot));
    }
    return out;
  }

  /** Detaches everywhere, frees the ring and unloads. Safe to call again; throws the first detach error. */
  close(): void {
    let first: unknown;
    for (const a of this.#attached.values()) {
      try {
        tcDetach(a);
      } catch (err) {
        first ??= err;
      }
    }
    this.#attached.clear();
    if (this.#obj !== null) {
      this.#ring.close();
      libbpf().bpf_object__close(this.#obj);
      this.#obj = null;
    }
    if (first !== undefined) throw first;
  }
}
