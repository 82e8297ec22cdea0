import type { NetflowEndReason, NetflowRecord } from "../record.ts";
import { FLOW_END_REASON, TEMPLATE_V4, TEMPLATE_V6, type Template } from "./elements.ts";

/** IPFIX version number in every message header (RFC 7011 §3.1). */
export const IPFIX_VERSION = 10;
/** Bytes of the message header. */
export const MESSAGE_HEADER_BYTES = 16;
/** Bytes of a set header. */
export const SET_HEADER_BYTES = 4;
/** Set id of template sets. */
export const TEMPLATE_SET_ID = 2;
/** Largest IPFIX message over UDP/IPv4 with a 1500-byte MTU (1500 − 20 IP − 8 UDP). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1472;
/** Default period of template retransmission over UDP (RFC 7011 §8.4 leaves it to the exporter). */
export const DEFAULT_TEMPLATE_INTERVAL_MS = 60_000;

/** Settings of an {@link IpfixEncoder}. */
export interface IpfixEncoderOptions {
  /** Observation domain id in every header; default 0. */
  readonly observationDomainId?: number;
  /** Largest message in bytes (path MTU minus IP and UDP headers); default 1472. */
  readonly maxMessageBytes?: number;
  /** Templates are re-sent when this many ms passed since they last were; default 60 000. */
  readonly templateIntervalMs?: number;
  /** Wall clock in ms; tests pass their own. */
  readonly now?: () => number;
}

const END_REASONS: Readonly<Record<NetflowEndReason, number>> = {
  idle: FLOW_END_REASON.idleTimeout,
  active: FLOW_END_REASON.activeTimeout,
  shutdown: FLOW_END_REASON.forcedEnd,
  fallback: FLOW_END_REASON.lackOfResources,
};

const TEMPLATES: readonly Template[] = [TEMPLATE_V4, TEMPLATE_V6];
const TEMPLATE_SET_BYTES =
  SET_HEADER_BYTES + TEMPLATES.reduce((n, t) => n + 4 + 4 * t.fields.length, 0);

/**
 * Encodes flow records into IPFIX messages (RFC 7011): a header with export time, the
 * sequence number (data records sent before this message, modulo 2^32) and the observation
 * domain; the template set at the start and again once per template interval; data sets
 * packed up to the message size. Records must have passed {@link netflowRecordProblem}.
 */
export class IpfixEncoder {
  readonly #domain: number;
  readonly #maxBytes: number;
  readonly #templateIntervalMs: number;
  readonly #now: () => number;
  #sequence = 0;
  #templatesSentMs = Number.NEGATIVE_INFINITY;

  constructor(opts: IpfixEncoderOptions = {}) {
    this.#domain = opts.observationDomainId ?? 0;
    this.#maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#templateIntervalMs = opts.templateIntervalMs ?? DEFAULT_TEMPLATE_INTERVAL_MS;
    this.#now = opts.now ?? Date.now;
    const smallest = MESSAGE_HEADER_BYTES + TEMPLATE_SET_BYTES + SET_HEADER_BYTES;
    if (this.#maxBytes < smallest + TEMPLATE_V6.recordLength || this.#maxBytes > 0xffff) {
      throw new RangeError(
        `maxMessageBytes must be in ${smallest + TEMPLATE_V6.recordLength}..65535, got ${this.#maxBytes}`,
      );
    }
  }

  /** Data records encoded so far, modulo 2^32 (the next message's sequence number). */
  get sequence(): number {
    return this.#sequence;
  }

  /** Makes the next message carry the templates (e.g. after the collector restarted). */
  resendTemplates(): void {
    this.#templatesSentMs = Number.NEGATIVE_INFINITY;
  }

  /** A message holding only the template set; sent when the exporter starts. */
  templateMessage(): Uint8Array {
    const w = new MessageWriter(this.#maxBytes);
    this.#writeTemplates(w);
    return w.finish(this.#header());
  }

  /** Encodes `records` into as few messages as fit the size limit. */
  encode(records: readonly NetflowRecord[]): Uint8Array[] {
    const out: Uint8Array[] = [];
    let i = 0;
    while (i < records.length) {
      const w = new MessageWriter(this.#maxBytes);
      if (this.#now() - this.#templatesSentMs >= this.#templateIntervalMs) {
        this.#writeTemplates(w);
      }
      const header = this.#header();
      let count = 0;
      for (; i < records.length; i++) {
        const r = records[i] as NetflowRecord;
        const t = r.family === 4 ? TEMPLATE_V4 : TEMPLATE_V6;
        if (!w.fits(t)) break;
        w.record(t, r);
        count++;
      }
      out.push(w.finish(header));
      this.#sequence = (this.#sequence + count) >>> 0;
    }
    return out;
  }

  #header(): Header {
    return {
      exportSecs: Math.floor(this.#now() / 1000) >>> 0,
      sequence: this.#sequence,
      domain: this.#domain,
    };
  }

  #writeTemplates(w: MessageWriter): void {
    w.templates(TEMPLATES);
    this.#templatesSentMs = this.#now();
  }
}

interface Header {
  exportSecs: number;
  sequence: number;
  domain: number;
}

/** Builds one message: sets appended in order, the open data set closed when it changes. */
class MessageWriter {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  #off = MESSAGE_HEADER_BYTES;
  /** Offset of the open data set's header, -1 when none is open. */
  #setStart = -1;
  #setId = 0;

  constructor(maxBytes: number) {
    this.#buf = new Uint8Array(maxBytes);
    this.#view = new DataView(this.#buf.buffer);
  }

  templates(templates: readonly Template[]): void {
    this.#closeSet();
    const start = this.#off;
    this.#off += SET_HEADER_BYTES;
    for (const t of templates) {
      this.#view.setUint16(this.#off, t.id);
      this.#view.setUint16(this.#off + 2, t.fields.length);
      this.#off += 4;
      for (const f of t.fields) {
        this.#view.setUint16(this.#off, f.id);
        this.#view.setUint16(this.#off + 2, f.length);
        this.#off += 4;
      }
    }
    this.#view.setUint16(start, TEMPLATE_SET_ID);
    this.#view.setUint16(start + 2, this.#off - start);
  }

  /** Whether one more record of `t` fits, counting a new set header if one is needed. */
  fits(t: Template): boolean {
    const setHeader = this.#setStart >= 0 && this.#setId === t.id ? 0 : SET_HEADER_BYTES;
    return this.#off + setHeader + t.recordLength <= this.#buf.length;
  }

  record(t: Template, r: NetflowRecord): void {
    if (this.#setStart < 0 || this.#setId !== t.id) {
      this.#closeSet();
      this.#setStart = this.#off;
      this.#setId = t.id;
      this.#off += SET_HEADER_BYTES;
    }
    this.#off = writeRecord(this.#view, this.#buf, this.#off, r);
  }

  finish(h: Header): Uint8Array {
    this.#closeSet();
    this.#view.setUint16(0, IPFIX_VERSION);
    this.#view.setUint16(2, this.#off);
    this.#view.setUint32(4, h.exportSecs);
    this.#view.setUint32(8, h.sequence);
    this.#view.setUint32(12, h.domain);
    return this.#buf.subarray(0, this.#off);
  }

  #closeSet(): void {
    if (this.#setStart < 0) return;
    this.#view.setUint16(this.#setStart, this.#setId);
    this.#view.setUint16(this.#setStart + 2, this.#off - this.#setStart);
    this.#setStart = -1;
  }
}

/** Writes `r` in template field order at `off`; returns the offset after it. */
function writeRecord(v: DataView, buf: Uint8Array, off: number, r: NetflowRecord): number {
  let o = off;
  v.setBigUint64(o, r.bytes);
  v.setBigUint64(o + 8, r.packets);
  v.setBigUint64(o + 16, BigInt(r.firstSeenMs));
  v.setBigUint64(o + 24, BigInt(r.lastSeenMs));
  o += 32;
  buf.set(r.srcAddr, o);
  o += r.srcAddr.length;
  buf.set(r.dstAddr, o);
  o += r.dstAddr.length;
  v.setUint16(o, r.srcPort);
  v.setUint16(o + 2, r.dstPort);
  v.setUint8(o + 4, r.proto);
  // ipClassOfService is the whole TOS/traffic class byte: DSCP in the upper six bits.
  v.setUint8(o + 5, r.dscp << 2);
  v.setUint16(o + 6, r.tcpFlags & 0xff);
  v.setUint16(o + 8, (r.icmpType << 8) | r.icmpCode);
  const ingress = r.direction === "ingress";
  v.setUint32(o + 10, ingress ? r.ifindex : 0);
  v.setUint32(o + 14, ingress ? 0 : r.ifindex);
  v.setUint8(o + 18, ingress ? 0 : 1);
  o += 19;
  buf.set(r.srcMac, o);
  buf.set(r.dstMac, o + 6);
  o += 12;
  v.setUint8(o, END_REASONS[r.endReason]);
  v.setBigUint64(o + 1, r.drops?.bytes ?? 0n);
  v.setBigUint64(o + 9, r.drops?.packets ?? 0n);
  return o + 17;
}
