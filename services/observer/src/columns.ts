import type { Flow } from "@periscope/proto";
import type { StoredEvent } from "./event.ts";
import { WIRE_LEN, WIRE_VARINT, WireReader } from "./wire.ts";

/** Id of a string the interner has no room for: nothing can be concluded from it. */
export const UNKNOWN_ID = 0xffffffff;

/** Most distinct strings (namespaces, pod names, IPs) the columns intern. */
export const DEFAULT_INTERN_LIMIT = 1 << 20;

/**
 * Strings to small ids; id 0 is "". Bounded: beyond `limit` strings every new one gets
 * {@link UNKNOWN_ID}, so a prefilter lets such rows through to the exact filter.
 */
export class Interner {
  readonly #ids = new Map<string, number>([["", 0]]);
  readonly #strings: string[] = [""];
  /** UTF-8 bytes of ids made from bytes, to confirm a {@link #byHash} hit. */
  readonly #bytes: (Uint8Array | undefined)[] = [undefined];
  /** FNV-1a hash of a string's bytes → the id first seen with it. */
  readonly #byHash = new Map<number, number>();
  constructor(readonly limit = DEFAULT_INTERN_LIMIT) {
    if (!(limit >= 1 && limit <= DEFAULT_INTERN_LIMIT)) {
      throw new RangeError(`intern limit must be 1..${DEFAULT_INTERN_LIMIT}, got ${limit}`);
    }
  }

  /** Number of ids handed out (the largest id + 1). */
  get size(): number {
    return this.#strings.length;
  }

  /** The id of `s`, made on first sight (or {@link UNKNOWN_ID} when full). */
  id(s: string): number {
    const known = this.#ids.get(s);
    if (known !== undefined) return known;
    if (this.#strings.length >= this.limit) return UNKNOWN_ID;
    const id = this.#strings.length;
    this.#strings.push(s);
    this.#ids.set(s, id);
    return id;
  }

  /**
   * The id of the UTF-8 string at `buf[start, end)`: a hash of the bytes finds a known
   * id without decoding them (confirmed byte for byte); otherwise decoded and interned.
   */
  idOfBytes(buf: Uint8Array, start: number, end: number): number {
    if (end === start) return 0;
    let h = 0x811c9dc5;
    for (let i = start; i < end; i++) h = Math.imul(h ^ (buf[i] as number), 0x01000193);
    h >>>= 0;
    const known = this.#byHash.get(h);
    if (known !== undefined) {
      const b = this.#bytes[known];
      if (b !== undefined && b.length === end - start) {
        let same = true;
        for (let i = 0; i < b.length; i++) {
          if (b[i] !== buf[start + i]) {
            same = false;
            break;
          }
        }
        if (same) return known;
      }
    }
    const id = this.id(utf8.decode(buf.subarray(start, end)));
    if (known === undefined && id !== UNKNOWN_ID) {
      this.#byHash.set(h, id);
      this.#bytes[id] ??= buf.slice(start, end);
    }
    return id;
  }

  /** The string of `id` (undefined for {@link UNKNOWN_ID}). */
  string(id: number): string | undefined {
    return this.#strings[id];
  }
}

/** Row kinds: a flow whose fields are in the columns, anything else, or a flow they cannot describe. */
export const ROW_OTHER = 0;
export const ROW_FLOW = 1;
/** A flow whose encoding the columns cannot describe exactly (repeated sub-messages…). */
export const ROW_OPAQUE = 2;

/** Layer4 oneof member field numbers (TCP 1 … IGMP 7) as stored; 0 without l4. */
const L4_WITH_PORTS = new Set([1, 2, 5]);
/** Layer7 record oneof member (dns 100, http 101, kafka 102) → 1..3; 0 without. */
const L7_CODE: Readonly<Record<number, number>> = { 100: 1, 101: 2, 102: 3 };
/** Layer4 oneof case names by stored code. */
export const L4_CASES = [undefined, "TCP", "UDP", "ICMPv4", "ICMPv6", "SCTP", "VRRP", "IGMP"];
/** Layer7 record case names by stored code. */
export const L7_CASES = [undefined, "dns", "http", "kafka"];
/** Marks "no ports" in the port columns (the flow is not TCP, UDP or SCTP). */
export const NO_PORT = 0x10000;

const utf8 = new TextDecoder();

/**
 * A few fields of every flow in the ring, one typed array per field and one row per ring
 * slot, so a query can rule rows out without decoding them. Strings are interned. A row
 * describes its flow exactly or is marked {@link ROW_OPAQUE}; a prefilter built on the
 * columns may therefore only ever reject flows the full filter would reject too.
 */
export class FlowColumns {
  readonly interner: Interner;
  /** ROW_OTHER, ROW_FLOW or ROW_OPAQUE. */
  readonly kind: Uint8Array;
  readonly srcNs: Uint32Array;
  readonly srcPod: Uint32Array;
  readonly dstNs: Uint32Array;
  readonly dstPod: Uint32Array;
  readonly srcIp: Uint32Array;
  readonly dstIp: Uint32Array;
  /** Layer4 oneof field number (1 TCP … 7 IGMP), 0 without l4. */
  readonly l4: Uint8Array;
  /** 1 dns, 2 http, 3 kafka, 0 without l7 record. */
  readonly l7: Uint8Array;
  readonly verdict: Int32Array;
  /** TCP/UDP/SCTP ports, {@link NO_PORT} for other flows. */
  readonly srcPort: Uint32Array;
  readonly dstPort: Uint32Array;
  /** 1 when the flow has an event_type. */
  readonly hasEventType: Uint8Array;
  readonly eventType: Int32Array;
  readonly eventSubType: Int32Array;
  /** Stream sequence of the batch each row came from; 0 for events the observer made. */
  readonly streamSeq: Float64Array;
  /** Event time, ms since the epoch (any event kind). */
  readonly time: Float64Array;

  constructor(
    readonly capacity: number,
    internLimit = DEFAULT_INTERN_LIMIT,
  ) {
    this.interner = new Interner(internLimit);
    this.kind = new Uint8Array(capacity);
    this.srcNs = new Uint32Array(capacity);
    this.srcPod = new Uint32Array(capacity);
    this.dstNs = new Uint32Array(capacity);
    this.dstPod = new Uint32Array(capacity);
    this.srcIp = new Uint32Array(capacity);
    this.dstIp = new Uint32Array(capacity);
    this.l4 = new Uint8Array(capacity);
    this.l7 = new Uint8Array(capacity);
    this.verdict = new Int32Array(capacity);
    this.srcPort = new Uint32Array(capacity);
    this.dstPort = new Uint32Array(capacity);
    this.hasEventType = new Uint8Array(capacity);
    this.eventType = new Int32Array(capacity);
    this.eventSubType = new Int32Array(capacity);
    this.streamSeq = new Float64Array(capacity);
    this.time = new Float64Array(capacity);
  }

  /** Fills row `slot` from `ev` (from its encoding when it has one, else from its message). */
  set(slot: number, ev: StoredEvent): void {
    this.streamSeq[slot] = ev.streamSeq;
    this.time[slot] = ev.timeMs;
    this.#clear(slot);
    if (ev.kind !== "flow") {
      this.kind[slot] = ROW_OTHER;
      return;
    }
    let ok: boolean;
    try {
      ok =
        ev.withEncoding((buf, start, end) => this.#fromBytes(slot, buf, start, end)) ??
        this.#fromFlow(slot, ev.flow);
    } catch {
      ok = false; // the exact filter decides (and rejects what does not decode)
    }
    this.kind[slot] = ok ? ROW_FLOW : ROW_OPAQUE;
  }

  #clear(slot: number): void {
    this.srcNs[slot] = 0;
    this.srcPod[slot] = 0;
    this.dstNs[slot] = 0;
    this.dstPod[slot] = 0;
    this.srcIp[slot] = 0;
    this.dstIp[slot] = 0;
    this.l4[slot] = 0;
    this.l7[slot] = 0;
    this.verdict[slot] = 0;
    this.srcPort[slot] = NO_PORT;
    this.dstPort[slot] = NO_PORT;
    this.hasEventType[slot] = 0;
    this.eventType[slot] = 0;
    this.eventSubType[slot] = 0;
  }

  #fromFlow(slot: number, flow: Flow | undefined): boolean {
    if (flow === undefined) return false;
    const it = this.interner;
    this.srcNs[slot] = it.id(flow.source?.namespace ?? "");
    this.srcPod[slot] = it.id(flow.source?.podName ?? "");
    this.dstNs[slot] = it.id(flow.destination?.namespace ?? "");
    this.dstPod[slot] = it.id(flow.destination?.podName ?? "");
    this.srcIp[slot] = it.id(flow.IP?.source ?? "");
    this.dstIp[slot] = it.id(flow.IP?.destination ?? "");
    this.verdict[slot] = flow.verdict;
    const l4 = flow.l4?.protocol;
    const code = l4?.case === undefined ? 0 : L4_CASES.indexOf(l4.case);
    if (code < 0) return false;
    this.l4[slot] = code;
    if (l4?.case === "TCP" || l4?.case === "UDP" || l4?.case === "SCTP") {
      if (!this.#setPorts(slot, l4.value.sourcePort, l4.value.destinationPort)) return false;
    }
    const l7 = flow.l7?.record.case;
    this.l7[slot] = l7 === undefined ? 0 : L7_CASES.indexOf(l7);
    if (flow.eventType) {
      this.hasEventType[slot] = 1;
      this.eventType[slot] = flow.eventType.type;
      this.eventSubType[slot] = flow.eventType.subType;
    }
    return true;
  }

  #setPorts(slot: number, src: number, dst: number): boolean {
    if (src > 0xffff || dst > 0xffff) return false;
    this.srcPort[slot] = src;
    this.dstPort[slot] = dst;
    return true;
  }

  /**
   * Reads the row from an encoded GetFlowsResponse. False when the encoding is one the
   * columns cannot mirror exactly: a flow or one of the read sub-messages repeated (a
   * decoder merges them), two Layer4 members, ports beyond 16 bits.
   */
  #fromBytes(slot: number, buf: Uint8Array, start: number, stop: number): boolean {
    const r = new WireReader(buf, start, stop);
    let flowStart = -1;
    let flowEnd = -1;
    while (r.pos < stop) {
      const tag = r.uint32();
      if (tag >>> 3 === 1 && (tag & 7) === WIRE_LEN) {
        const end = r.lenEnd();
        if (flowStart >= 0) return false;
        flowStart = r.pos;
        flowEnd = end;
        r.pos = end;
      } else r.skip(tag & 7);
    }
    if (flowStart < 0) return false;
    r.pos = flowStart;
    /** Bit per sub-message field already read (field numbers stay below 32). */
    let seen = 0;
    while (r.pos < flowEnd) {
      const tag = r.uint32();
      const field = tag >>> 3;
      const wt = tag & 7;
      if (field === 2 && wt === WIRE_VARINT) {
        this.verdict[slot] = r.uint32() | 0;
        continue;
      }
      if (wt !== WIRE_LEN || !SUB_FIELDS.has(field)) {
        r.skip(wt);
        continue;
      }
      const end = r.lenEnd();
      if ((seen & (1 << field)) !== 0) return false;
      seen |= 1 << field;
      const sub = new WireReader(buf, r.pos, end);
      r.pos = end;
      if (!this.#readSub(slot, field, sub, end)) return false;
    }
    return true;
  }

  #readSub(slot: number, field: number, r: WireReader, end: number): boolean {
    const it = this.interner;
    switch (field) {
      case 5: // IP: source 1, destination 2
        while (r.pos < end) {
          const tag = r.uint32();
          if (tag >>> 3 === 1 && (tag & 7) === WIRE_LEN) this.srcIp[slot] = strId(it, r);
          else if (tag >>> 3 === 2 && (tag & 7) === WIRE_LEN) this.dstIp[slot] = strId(it, r);
          else r.skip(tag & 7);
        }
        return true;
      case 6:
        return this.#readL4(slot, r, end);
      case 8:
      case 9: {
        // Endpoint: namespace 3, pod_name 5
        let ns = 0;
        let pod = 0;
        while (r.pos < end) {
          const tag = r.uint32();
          if (tag >>> 3 === 3 && (tag & 7) === WIRE_LEN) ns = strId(it, r);
          else if (tag >>> 3 === 5 && (tag & 7) === WIRE_LEN) pod = strId(it, r);
          else r.skip(tag & 7);
        }
        const nsCol = field === 8 ? this.srcNs : this.dstNs;
        const podCol = field === 8 ? this.srcPod : this.dstPod;
        nsCol[slot] = ns;
        podCol[slot] = pod;
        return true;
      }
      case 15: // Layer7: the record oneof's last member wins
        while (r.pos < end) {
          const tag = r.uint32();
          const code = L7_CODE[tag >>> 3];
          if (code !== undefined && (tag & 7) === WIRE_LEN) this.l7[slot] = code;
          r.skip(tag & 7);
        }
        return true;
      default: {
        // 19, CiliumEventType: type 1, sub_type 2
        this.hasEventType[slot] = 1;
        while (r.pos < end) {
          const tag = r.uint32();
          if (tag >>> 3 === 1 && (tag & 7) === WIRE_VARINT) this.eventType[slot] = r.uint32() | 0;
          else if (tag >>> 3 === 2 && (tag & 7) === WIRE_VARINT) {
            this.eventSubType[slot] = r.uint32() | 0;
          } else r.skip(tag & 7);
        }
        return true;
      }
    }
  }

  #readL4(slot: number, r: WireReader, end: number): boolean {
    let member = 0;
    while (r.pos < end) {
      const tag = r.uint32();
      const f = tag >>> 3;
      if (f < 1 || f > 7 || (tag & 7) !== WIRE_LEN) {
        r.skip(tag & 7);
        continue;
      }
      const subEnd = r.lenEnd();
      if (member !== 0) return false; // members replace or merge on decode
      member = f;
      let src = 0;
      let dst = 0;
      while (r.pos < subEnd) {
        const tag2 = r.uint32();
        if (tag2 >>> 3 === 1 && (tag2 & 7) === WIRE_VARINT) src = r.uint32();
        else if (tag2 >>> 3 === 2 && (tag2 & 7) === WIRE_VARINT) dst = r.uint32();
        else r.skip(tag2 & 7);
      }
      if (r.pos !== subEnd) return false;
      if (L4_WITH_PORTS.has(f) && !this.#setPorts(slot, src, dst)) return false;
    }
    this.l4[slot] = member;
    return true;
  }
}

/** Flow fields read as sub-messages: IP, l4, source, destination, l7, event_type. */
const SUB_FIELDS = new Set([5, 6, 8, 9, 15, 19]);

/** The interned id of the length-delimited string at the reader's position. */
function strId(it: Interner, r: WireReader): number {
  const end = r.lenEnd();
  const id = it.idOfBytes(r.buf, r.pos, end);
  r.pos = end;
  return id;
}
