/**
 * Recorder ↔ collector protocol. Control: JSON requests on `periscope.ctl.<node>.record`
 * ({@link RecordControl}), answered with {@link RecordReply}. Packets: binary batches
 * ({@link encodeCaptureBatch}) on `periscope.capture.<recording>.<node>`, core NATS, in
 * order per node; each batch says how many packets came before it on that node, so the
 * receiver counts packets lost in transit exactly.
 */
import { BusInputError } from "./errors.ts";
import { sanitizeToken, subjects } from "./subjects.ts";

/** Most filters one recording may have (the kernel holds 64 per node over all recordings). */
export const RECORD_MAX_FILTERS = 64;
/** Largest capture length per packet, bytes (also the pcap snap length). */
export const RECORD_MAX_CAPTURE_LEN = 65535;

/** Control verb of recording requests (`periscope.ctl.<node>.record`). */
export const RECORD_VERB = "record";

/** Subject of a recording's packets from one node. */
export function captureSubject(recording: string, node: string): string {
  return `periscope.capture.${sanitizeToken(recording)}.${sanitizeToken(node)}`;
}

/** Every node's packets of a recording (subscription subject). */
export function captureSubjectAll(recording: string): string {
  return `periscope.capture.${sanitizeToken(recording)}.*`;
}

/** Subject of recording control requests to one node's collector. */
export function recordControlSubject(node: string): string {
  return subjects.ctl(node, RECORD_VERB);
}

/** One filter as sent to collectors: parsed and validated by the recorder. */
export interface RecordFilterSpec {
  readonly family: 4 | 6;
  /** IPPROTO_*, 0 = any. */
  readonly proto: number;
  /** Address text (IPv4 dotted or IPv6) and prefix length. */
  readonly srcAddr: string;
  readonly srcPrefix: number;
  readonly dstAddr: string;
  readonly dstPrefix: number;
  readonly srcPort: number;
  readonly dstPort: number;
}

/** A control request. */
export type RecordControl =
  | {
      readonly op: "start";
      /** Recording id: a subject token ([a-z0-9-]). */
      readonly id: string;
      readonly filters: readonly RecordFilterSpec[];
      /** Bytes kept per packet, 1..65535. */
      readonly capLen: number;
      /** Filters are removed unless renewed within this many ms. */
      readonly leaseMs: number;
    }
  | { readonly op: "renew"; readonly id: string }
  | { readonly op: "stop"; readonly id: string };

/** Per-node counters of one recording, as the collector saw them. */
export interface NodeRecordStats {
  /** Packets published. */
  readonly packets: number;
  /** Captured bytes published. */
  readonly bytes: number;
  /** Packets the kernel could not write (ring buffer full). */
  readonly kernelLost: number;
}

/** A control reply. `error` names what was wrong. */
export type RecordReply =
  | { readonly ok: true; readonly node: string; readonly stats?: NodeRecordStats }
  | { readonly ok: false; readonly node: string; readonly error: string; readonly unknown?: true };

/** Version byte of capture batches. */
export const CAPTURE_BATCH_VERSION = 1;
/** Batch header: version u8, flags u8, pad u16, count u32, seq u64, firstIndex u64, lost u64. */
export const CAPTURE_BATCH_HEADER = 32;
/**
 * Per-packet header: ifindex u32, flags u8, obs u8, pad u16, then exactly a pcap record
 * header (ts seconds u32, ts nanoseconds u32, cap_len u32, orig_len u32), then the data:
 * a receiver writes `[8, 24 + cap_len)` of each entry to a nanosecond pcap file as is.
 */
export const CAPTURE_PACKET_HEADER = 24;
/** Batch flag: the node's last batch of the recording. */
export const BATCH_FINAL = 0x01;
/** Packet flag: data starts at the network header (no L2 header). */
export const PACKET_L3 = 0x02;

/** One captured packet in a batch. */
export interface CapturedPacket {
  /** Unix time, nanoseconds. */
  readonly tsNs: bigint;
  readonly origLen: number;
  readonly ifindex: number;
  /** {@link PACKET_L3} when the data has no L2 header. */
  readonly flags: number;
  /** Observation point (10 ingress, 11 egress). */
  readonly obsPoint: number;
  readonly data: Uint8Array;
}

/** A decoded batch. */
export interface CaptureBatch {
  readonly final: boolean;
  /** Batch number on this node, from 0. */
  readonly seq: number;
  /** Packets of this recording this node published before this batch. */
  readonly firstIndex: number;
  /** Packets this node lost so far (kernel and collector), cumulative. */
  readonly lost: number;
  readonly packets: CapturedPacket[];
}

/** Encodes a batch (a copy). */
export function encodeCaptureBatch(b: CaptureBatch): Uint8Array {
  const w = new CaptureBatchWriter();
  for (const p of b.packets) {
    const sec = Number(p.tsNs / 1_000_000_000n);
    const nsec = Number(p.tsNs % 1_000_000_000n);
    w.append(sec, nsec, p.origLen, p.ifindex, p.flags, p.obsPoint, p.data, 0, p.data.length);
  }
  return w.finish(b.seq, b.firstIndex, b.lost, b.final).slice();
}

/**
 * Builds one batch in place, packet by packet, without an object per packet: a growing
 * buffer reused from batch to batch (the hot path of the collector).
 */
export class CaptureBatchWriter {
  #buf: Uint8Array;
  #dv: DataView;
  #at = CAPTURE_BATCH_HEADER;
  #count = 0;

  constructor(initialBytes = 64 * 1024) {
    this.#buf = new Uint8Array(Math.max(initialBytes, CAPTURE_BATCH_HEADER));
    this.#dv = new DataView(this.#buf.buffer);
  }

  /** Packets appended since the last {@link finish}. */
  get count(): number {
    return this.#count;
  }

  /** Bytes the batch holds so far (header included). */
  get bytes(): number {
    return this.#at;
  }

  /** Appends one packet: `src[from, from + len)` with its header fields (time as Unix s + ns). */
  append(
    sec: number,
    nsec: number,
    origLen: number,
    ifindex: number,
    flags: number,
    obsPoint: number,
    src: Uint8Array,
    from: number,
    len: number,
  ): void {
    const need = this.#at + CAPTURE_PACKET_HEADER + len;
    if (need > this.#buf.length) {
      const next = new Uint8Array(Math.max(need, this.#buf.length * 2));
      next.set(this.#buf.subarray(0, this.#at));
      this.#buf = next;
      this.#dv = new DataView(next.buffer);
    }
    const at = this.#at;
    const dv = this.#dv;
    const buf = this.#buf;
    dv.setUint32(at, ifindex, true);
    buf[at + 4] = flags;
    buf[at + 5] = obsPoint;
    buf[at + 6] = 0;
    buf[at + 7] = 0;
    dv.setUint32(at + 8, sec, true);
    dv.setUint32(at + 12, nsec, true);
    dv.setUint32(at + 16, len, true);
    dv.setUint32(at + 20, origLen > len ? origLen : len, true);
    const to = at + CAPTURE_PACKET_HEADER;
    if (len <= 64) {
      for (let i = 0; i < len; i++) buf[to + i] = src[from + i] as number;
    } else {
      buf.set(src.subarray(from, from + len), to);
    }
    this.#at = need;
    this.#count++;
  }

  /**
   * Writes the header and returns the batch, a view valid until the next append: copy it
   * before handing it to anything that keeps it (nats.js publish keeps a reference until
   * it writes to the socket). The writer is empty again afterwards.
   */
  finish(seq: number, firstIndex: number, lost: number, final: boolean): Uint8Array {
    const dv = this.#dv;
    this.#buf[0] = CAPTURE_BATCH_VERSION;
    this.#buf[1] = final ? BATCH_FINAL : 0;
    this.#buf[2] = 0;
    this.#buf[3] = 0;
    dv.setUint32(4, this.#count, true);
    dv.setBigUint64(8, BigInt(seq), true);
    dv.setBigUint64(16, BigInt(firstIndex), true);
    dv.setBigUint64(24, BigInt(lost), true);
    const out = this.#buf.subarray(0, this.#at);
    this.#at = CAPTURE_BATCH_HEADER;
    this.#count = 0;
    return out;
  }
}

/** Decodes a batch; throws BusInputError naming what is wrong. Packet data are views of `b`. */
export function decodeCaptureBatch(b: Uint8Array): CaptureBatch {
  if (b.length < CAPTURE_BATCH_HEADER) {
    throw new BusInputError(`capture batch: ${b.length} bytes, shorter than its header`);
  }
  if (b[0] !== CAPTURE_BATCH_VERSION) throw new BusInputError(`capture batch: version ${b[0]}`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const count = dv.getUint32(4, true);
  const packets: CapturedPacket[] = [];
  let at = CAPTURE_BATCH_HEADER;
  for (let i = 0; i < count; i++) {
    if (at + CAPTURE_PACKET_HEADER > b.length) {
      throw new BusInputError(`capture batch: packet ${i} header past the end`);
    }
    const capLen = dv.getUint32(at + 16, true);
    const end = at + CAPTURE_PACKET_HEADER + capLen;
    if (end > b.length) throw new BusInputError(`capture batch: packet ${i} data past the end`);
    packets.push({
      tsNs:
        BigInt(dv.getUint32(at + 8, true)) * 1_000_000_000n + BigInt(dv.getUint32(at + 12, true)),
      origLen: dv.getUint32(at + 20, true),
      ifindex: dv.getUint32(at, true),
      flags: b[at + 4] ?? 0,
      obsPoint: b[at + 5] ?? 0,
      data: b.subarray(at + CAPTURE_PACKET_HEADER, end),
    });
    at = end;
  }
  if (at !== b.length) throw new BusInputError(`capture batch: ${b.length - at} trailing bytes`);
  return {
    final: ((b[1] ?? 0) & BATCH_FINAL) !== 0,
    seq: Number(dv.getBigUint64(8, true)),
    firstIndex: Number(dv.getBigUint64(16, true)),
    lost: Number(dv.getBigUint64(24, true)),
    packets,
  };
}
