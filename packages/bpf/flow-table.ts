import { ptr } from "bun:ffi";
import {
  decodeFlowKey,
  decodeFlowValue,
  FLOW_KEY_LAYOUT,
  FLOW_SPILL_LAYOUT,
  FLOW_VALUE_LAYOUT,
  type FlowCounters,
  type FlowKey,
  mergeFlowCounters,
} from "@periscope/wire";
import { sumPerCpu } from "./bpf-object.ts";
import { BpfError, ERRNO } from "./errors.ts";
import { libbpf } from "./ffi.ts";
import { RingBufferReader } from "./ring-buffer.ts";

/** Default entries of each flow table generation. */
export const DEFAULT_FLOW_ENTRIES = 16384;
/** Largest flow table generation {@link TraceProgram.load} accepts, entries. */
export const MAX_FLOW_ENTRIES = 1 << 20;
/** Default size of the `flow_spill` ring buffer, bytes. */
export const DEFAULT_FLOW_SPILL_BYTES = 1 << 20;

/** The maps of trace.bpf.o that flow accounting uses, by file descriptor. */
export interface FlowTableMaps {
  gen: number;
  tables: readonly [number, number];
  spill: number;
  spillLost: number;
  /** Entries of each table (as sized before load). */
  entries: number;
  /** Bytes of the spill ring. */
  spillBytes: number;
}

/** One flow read from the table: its key bytes (a map key for callers), decoded key, CPUs' counters summed. */
export interface FlowDelta {
  /** The 56 key bytes as a string of hex, unique per key. */
  id: string;
  key: FlowKey;
  counters: FlowCounters;
}

const VALUE_STRIDE = Math.ceil(FLOW_VALUE_LAYOUT.size / 8) * 8;

function hexKey(buf: Uint8Array, off: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + off, FLOW_KEY_LAYOUT.size).toString("hex");
}

/**
 * Flow accounting of the loaded trace programs (bpf/include/flows.h): turns it
 * on and off and evicts the counters exactly. {@link evict} switches packets to
 * the other table generation (the kernel returns once no program can still
 * write the old one), then reads and deletes the old one whole, so every
 * increment is read exactly once. Not thread-safe: one JS thread.
 */
export class FlowTable {
  readonly #maps: FlowTableMaps;
  readonly #ncpu: number;
  readonly #keys: Uint8Array;
  readonly #values: Uint8Array;
  readonly #spill: RingBufferReader;
  /** Index of the table packets count into, or -1 while off. */
  #active = -1;

  constructor(maps: FlowTableMaps) {
    this.#maps = maps;
    this.#ncpu = libbpf().libbpf_num_possible_cpus();
    if (this.#ncpu <= 0) throw new BpfError("libbpf_num_possible_cpus", -this.#ncpu);
    this.#keys = new Uint8Array(maps.entries * FLOW_KEY_LAYOUT.size);
    this.#values = new Uint8Array(maps.entries * VALUE_STRIDE * this.#ncpu);
    this.#spill = new RingBufferReader(maps.spill, maps.spillBytes);
  }

  /** True while packets are counted. */
  get enabled(): boolean {
    return this.#active >= 0;
  }

  /** Entries of each table generation. */
  get entries(): number {
    return this.#maps.entries;
  }

  #setSlot(index: number): void {
    const fd = new Uint32Array([this.#maps.tables[index] as number]);
    const rc = libbpf().bpf_map_update_elem(this.#maps.gen, ptr(new Uint32Array(1)), ptr(fd), 0);
    if (rc < 0) throw new BpfError("bpf_map_update_elem(flow_gen)", -rc);
    this.#active = index;
  }

  /** Starts counting (into generation 0). Doing it again does nothing. */
  enable(): void {
    if (this.#active < 0) this.#setSlot(0);
  }

  /**
   * Switches packets to the other generation and hands every flow of the one
   * it leaves to `onFlow` (CPUs summed), emptying it. Returns the flow count.
   * Nothing happens while off.
   */
  evict(onFlow: (flow: FlowDelta) => void): number {
    if (this.#active < 0) return 0;
    const old = this.#active;
    this.#setSlot(1 - old);
    return this.#drainTable(this.#maps.tables[old] as number, onFlow);
  }

  /**
   * Stops counting and hands what both generations hold to `onFlow`. Returns the
   * flow count. The kernel waits for programs in flight before the slot is empty.
   */
  disable(onFlow: (flow: FlowDelta) => void): number {
    if (this.#active < 0) return 0;
    const rc = libbpf().bpf_map_delete_elem(this.#maps.gen, ptr(new Uint32Array(1)));
    if (rc < 0 && rc !== -ERRNO.ENOENT) throw new BpfError("bpf_map_delete_elem(flow_gen)", -rc);
    this.#active = -1;
    let n = 0;
    for (const fd of this.#maps.tables) n += this.#drainTable(fd, onFlow);
    return n;
  }

  #drainTable(fd: number, onFlow: (flow: FlowDelta) => void): number {
    const token = new BigUint64Array(8);
    const next = new BigUint64Array(8);
    const count = new Uint32Array(1);
    let first = true;
    let total = 0;
    for (;;) {
      count[0] = this.#maps.entries;
      const rc = libbpf().bpf_map_lookup_and_delete_batch(
        fd,
        first ? null : ptr(token),
        ptr(next),
        ptr(this.#keys),
        ptr(this.#values),
        ptr(count),
        null,
      );
      if (rc < 0 && rc !== -ERRNO.ENOENT) {
        throw new BpfError("bpf_map_lookup_and_delete_batch(flows)", -rc);
      }
      const n = count[0] as number;
      for (let i = 0; i < n; i++) onFlow(this.#decodeEntry(i));
      total += n;
      if (rc === -ERRNO.ENOENT || n === 0) return total;
      token.set(next);
      first = false;
    }
  }

  #decodeEntry(i: number): FlowDelta {
    const keyOff = i * FLOW_KEY_LAYOUT.size;
    const valOff = i * VALUE_STRIDE * this.#ncpu;
    const counters = decodeFlowValue(this.#values, valOff);
    for (let c = 1; c < this.#ncpu; c++) {
      mergeFlowCounters(counters, decodeFlowValue(this.#values, valOff + c * VALUE_STRIDE));
    }
    return {
      id: hexKey(this.#keys, keyOff),
      key: decodeFlowKey(this.#keys, keyOff),
      counters,
    };
  }

  /**
   * Hands every packet waiting in the `flow_spill` ring (table full) to `onPacket`
   * as a one-packet flow delta. Returns the count.
   */
  drainSpill(onPacket: (flow: FlowDelta) => void, max?: number): number {
    return this.#spill.drain((rec) => {
      if (rec.length !== FLOW_SPILL_LAYOUT.size) {
        throw new BpfError(
          "flow_spill",
          ERRNO.EINVAL,
          `record is ${rec.length} bytes, want ${FLOW_SPILL_LAYOUT.size}`,
        );
      }
      onPacket({
        id: hexKey(rec, 0),
        key: decodeFlowKey(rec, FLOW_SPILL_LAYOUT.fields.key.offset),
        counters: decodeFlowValue(rec, FLOW_SPILL_LAYOUT.fields.value.offset),
      });
    }, max);
  }

  /** Packets that found both the table and the spill ring full, summed over CPUs, since load. */
  readSpillLost(): bigint {
    return sumPerCpu(this.#maps.spillLost, "flow_spill_lost");
  }

  /** Unmaps the spill ring (the maps belong to the trace program). */
  close(): void {
    this.#spill.close();
  }
}
