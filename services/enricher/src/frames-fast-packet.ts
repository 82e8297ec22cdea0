/**
 * A reader for the common shape of trace record (the enricher's fast frame path):
 * Ethernet II without VLAN tags carrying IPv4 (no fragment offset) or IPv6 (no
 * extension headers) with a whole TCP, UDP, ICMPv4 or ICMPv6 header. It reads the
 * record's fields and the packet's headers into one reused object, without building
 * strings except the IP addresses (IPv4 ones are remembered). Anything else (and every
 * record or packet the reference decoders would reject) is left to them: the reader
 * then returns false, and what it reports for the shapes it takes equals what
 * decodeTraceRecord and decodePacket give.
 */

import { formatIPv4, formatIPv6, MAX_CAPTURE } from "@periscope/model";
import {
  FLAG_L3,
  HDR_LAYOUT,
  RECORD_TYPE_TRACE,
  TRACE_FIXED_SIZE,
  TRACE_LAYOUT,
  TRACE_VERSION,
} from "@periscope/wire";

/** L4 kinds of {@link FastTrace.l4}. */
export const L4_NONE = 0;
export const L4_TCP = 1;
export const L4_UDP = 2;
export const L4_ICMPV4 = 3;
export const L4_ICMPV6 = 4;
/** Only from the reference decoder. */
export const L4_SCTP = 5;

/** What the fast writer needs of a trace record; offsets are into `bytes`. */
export interface FastTrace {
  bytes: Uint8Array;
  obsPoint: number;
  origLen: number;
  /** CLOCK_BOOTTIME stamp, high and low 32 bits. */
  tsHi: number;
  tsLo: number;
  ifindex: number;
  /** Netns cookie when the reference decoder read it (else see netnsCookieOf). */
  cookie: bigint | undefined;
  traceReason: number;
  /** Where the packet starts in `bytes` (the record's data). */
  data: number;
  capLen: number;
  /** 0 when the packet has no IP header. */
  ipVersion: 0 | 4 | 6;
  src: string;
  dst: string;
  l4: number;
  sport: number;
  dport: number;
  /** TCP flags byte (FIN 0x01 … CWR 0x80) and NS in bit 8. */
  tcpFlags: number;
  icmpType: number;
  icmpCode: number;
  /** TCP/UDP payload [payloadStart, payloadEnd) in `bytes`; payloadStart < 0 when none. */
  payloadStart: number;
  payloadEnd: number;
  tcpSeq: number;
}

const H = HDR_LAYOUT.fields;
const T = TRACE_LAYOUT.fields;
const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;

/** IPv4 address strings by their 32-bit value (bounded; cleared when full). */
const v4Names = new Map<number, string>();
const V4_NAMES_MAX = 65536;

function v4Name(b: Uint8Array, o: number): string {
  const key =
    (b[o] ?? 0) * 0x1000000 + (((b[o + 1] ?? 0) << 16) | ((b[o + 2] ?? 0) << 8) | (b[o + 3] ?? 0));
  let s = v4Names.get(key);
  if (s === undefined) {
    if (v4Names.size >= V4_NAMES_MAX) v4Names.clear();
    s = formatIPv4(b, o);
    v4Names.set(key, s);
  }
  return s;
}

const u16 = (b: Uint8Array, o: number): number => ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
const u32le = (b: Uint8Array, o: number): number =>
  ((b[o] ?? 0) | ((b[o + 1] ?? 0) << 8) | ((b[o + 2] ?? 0) << 16) | ((b[o + 3] ?? 0) << 24)) >>> 0;

/** The netns cookie of a record read by {@link readFastTrace}. */
export function netnsCookieOf(t: FastTrace): bigint {
  const o = T.netns_cookie.offset;
  return (BigInt(u32le(t.bytes, o + 4)) << 32n) | BigInt(u32le(t.bytes, o));
}

/** A reusable FastTrace. */
export function newFastTrace(): FastTrace {
  return {
    bytes: new Uint8Array(0),
    obsPoint: 0,
    origLen: 0,
    tsHi: 0,
    tsLo: 0,
    ifindex: 0,
    cookie: undefined,
    traceReason: 0,
    data: 0,
    capLen: 0,
    ipVersion: 4,
    src: "",
    dst: "",
    l4: L4_NONE,
    sport: 0,
    dport: 0,
    tcpFlags: 0,
    icmpType: 0,
    icmpCode: 0,
    payloadStart: -1,
    payloadEnd: 0,
    tcpSeq: 0,
  };
}

/**
 * Reads a trace record of the common shape into `t`; false (t undefined in part)
 * when the record or its packet is anything else.
 */
export function readFastTrace(b: Uint8Array, t: FastTrace): boolean {
  const len = b.length;
  if (len < TRACE_FIXED_SIZE) return false;
  if (b[H.type.offset] !== RECORD_TYPE_TRACE || b[H.version.offset] !== TRACE_VERSION) return false;
  if (((b[H.flags.offset] ?? 0) & FLAG_L3) !== 0) return false;
  const capLen = u32le(b, H.cap_len.offset);
  if (capLen > MAX_CAPTURE || capLen !== len - TRACE_FIXED_SIZE) return false;
  const d = TRACE_FIXED_SIZE;
  if (capLen < 14) return false;
  const etherType = u16(b, d + 12);
  let l4: number;
  let proto: number;
  let end: number;
  if (etherType === ETH_IPV4) {
    const ip = d + 14;
    if (len - ip < 20) return false;
    const vihl = b[ip] ?? 0;
    if (vihl >> 4 !== 4) return false;
    const hl = (vihl & 0x0f) * 4;
    if (hl < 20 || ip + hl > len) return false;
    const total = u16(b, ip + 2);
    if (total !== 0 && total < hl) return false;
    if ((u16(b, ip + 6) & 0x1fff) !== 0) return false;
    proto = b[ip + 9] ?? 0;
    t.ipVersion = 4;
    t.src = v4Name(b, ip + 12);
    t.dst = v4Name(b, ip + 16);
    l4 = ip + hl;
    end = total === 0 ? len : Math.min(len, ip + total);
    if (proto === 1) proto = 256 + 1; // ICMPv4 only under IPv4
  } else if (etherType === ETH_IPV6) {
    const ip = d + 14;
    if (len - ip < 40) return false;
    if ((b[ip] ?? 0) >> 4 !== 6) return false;
    proto = b[ip + 6] ?? 0;
    const plen = u16(b, ip + 4);
    end = plen === 0 ? len : Math.min(len, ip + 40 + plen);
    l4 = ip + 40;
    if (l4 > end) return false;
    t.ipVersion = 6;
    t.src = formatIPv6(b, ip + 8);
    t.dst = formatIPv6(b, ip + 24);
    if (proto === 58) proto = 256 + 58; // ICMPv6 only under IPv6
  } else {
    return false;
  }
  const span = end - l4;
  t.payloadStart = -1;
  switch (proto) {
    case 6: {
      if (span < 14) return false;
      const off = b[l4 + 12] ?? 0;
      const dataOff = (off >> 4) * 4;
      if (dataOff < 20) return false;
      t.l4 = L4_TCP;
      t.sport = u16(b, l4);
      t.dport = u16(b, l4 + 2);
      t.tcpFlags = (b[l4 + 13] ?? 0) | ((off & 1) << 8);
      const start = l4 + dataOff;
      if (start <= end) {
        t.payloadStart = start;
        t.payloadEnd = end;
        t.tcpSeq =
          (((b[l4 + 4] ?? 0) << 24) |
            ((b[l4 + 5] ?? 0) << 16) |
            ((b[l4 + 6] ?? 0) << 8) |
            (b[l4 + 7] ?? 0)) >>>
          0;
      }
      break;
    }
    case 17:
      if (span < 4) return false;
      t.l4 = L4_UDP;
      t.sport = u16(b, l4);
      t.dport = u16(b, l4 + 2);
      if (l4 + 8 <= end) {
        t.payloadStart = l4 + 8;
        t.payloadEnd = end;
      }
      break;
    case 256 + 1:
    case 256 + 58:
      if (span < 2) return false;
      t.l4 = proto === 256 + 1 ? L4_ICMPV4 : L4_ICMPV6;
      t.icmpType = b[l4] ?? 0;
      t.icmpCode = b[l4 + 1] ?? 0;
      break;
    default:
      return false;
  }
  t.bytes = b;
  t.obsPoint = b[H.subtype.offset] ?? 0;
  t.origLen = u32le(b, H.orig_len.offset);
  t.tsLo = u32le(b, T.ts_boot_ns.offset);
  t.tsHi = u32le(b, T.ts_boot_ns.offset + 4);
  t.cookie = undefined;
  t.ifindex = u32le(b, T.ifindex.offset);
  t.traceReason = b[T.trace_reason.offset] ?? 0;
  t.data = d;
  t.capLen = capLen;
  return true;
}
