/**
 * Packet builders for tests and benchmarks: byte-exact Ethernet, IPv4, IPv6,
 * TCP, UDP, SCTP and ICMP headers with correct length fields. Checksums are
 * left zero (the decoder does not verify them).
 */
import { parseIp } from "@periscope/model";

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function u16(v: number): [number, number] {
  return [(v >> 8) & 0xff, v & 0xff];
}

/** Bytes of "aa:bb:cc:dd:ee:ff". */
export function macBytes(mac: string): number[] {
  const parts = mac.split(":").map((h) => Number.parseInt(h, 16));
  if (parts.length !== 6 || parts.some((b) => Number.isNaN(b))) throw new Error(`bad MAC ${mac}`);
  return parts;
}

/** Bytes of an IPv4 address; throws for anything else. */
export function ipv4Bytes(ip: string): number[] {
  const bytes = parseIp(ip);
  if (bytes?.length !== 4) throw new Error(`bad IPv4 address ${ip}`);
  return [...bytes];
}

/** Bytes of an IPv6 address in any RFC 4291 text form; throws for anything else. */
export function ipv6Bytes(ip: string): number[] {
  const bytes = ip.includes(":") ? parseIp(ip) : undefined;
  if (bytes === undefined) throw new Error(`bad IPv6 address ${ip}`);
  return [...bytes];
}

export interface EthernetInit {
  src?: string;
  dst?: string;
  etherType: number;
  /** 802.1Q VLAN IDs, outermost first. */
  vlans?: number[];
}

/** Ethernet II frame around `payload`. */
export function ethernet(init: EthernetInit, payload: Uint8Array): Uint8Array {
  const tags = (init.vlans ?? []).flatMap((id) => [...u16(0x8100), ...u16(id)]);
  const head = [
    ...macBytes(init.dst ?? "02:00:00:00:00:02"),
    ...macBytes(init.src ?? "02:00:00:00:00:01"),
    ...tags,
    ...u16(init.etherType),
  ];
  return concat(new Uint8Array(head), payload);
}

export interface IPv4Init {
  src: string;
  dst: string;
  protocol: number;
  ttl?: number;
  /** Option bytes, padded to a multiple of 4. */
  options?: number[];
  /** Fragment offset in bytes (multiple of 8). */
  fragmentOffset?: number;
  moreFragments?: boolean;
  /** Override the total length field. */
  totalLength?: number;
}

/** IPv4 packet around `payload`. */
export function ipv4(init: IPv4Init, payload: Uint8Array): Uint8Array {
  const options = [...(init.options ?? [])];
  while (options.length % 4 !== 0) options.push(0);
  const headerLen = 20 + options.length;
  const frag = ((init.fragmentOffset ?? 0) / 8) | (init.moreFragments ? 0x2000 : 0);
  const head = [
    0x40 | (headerLen / 4),
    0,
    ...u16(init.totalLength ?? headerLen + payload.length),
    ...u16(0x1234),
    ...u16(frag),
    init.ttl ?? 64,
    init.protocol,
    0,
    0,
    ...ipv4Bytes(init.src),
    ...ipv4Bytes(init.dst),
    ...options,
  ];
  return concat(new Uint8Array(head), payload);
}

/** One IPv6 extension header: `type` is its own protocol number. */
export interface IPv6Extension {
  type: number;
  /** Body after the next-header/length bytes; padded to a multiple of 8 in total. */
  body?: number[];
}

export interface IPv6Init {
  src: string;
  dst: string;
  /** Upper-layer protocol after all extension headers. */
  nextHeader: number;
  hopLimit?: number;
  extensions?: IPv6Extension[];
}

/** IPv6 packet around `payload`, with the given extension header chain. */
export function ipv6(init: IPv6Init, payload: Uint8Array): Uint8Array {
  const exts = init.extensions ?? [];
  const extBytes: number[] = [];
  exts.forEach((ext, i) => {
    const next = exts[i + 1]?.type ?? init.nextHeader;
    const body = [...(ext.body ?? [0, 0, 0, 0, 0, 0])];
    while ((body.length + 2) % 8 !== 0) body.push(0);
    const lenField = ext.type === 44 ? 0 : (body.length + 2) / 8 - 1;
    extBytes.push(next, lenField, ...body);
  });
  const first = exts[0]?.type ?? init.nextHeader;
  const head = [
    0x60,
    0,
    0,
    0,
    ...u16(extBytes.length + payload.length),
    first,
    init.hopLimit ?? 64,
    ...ipv6Bytes(init.src),
    ...ipv6Bytes(init.dst),
    ...extBytes,
  ];
  return concat(new Uint8Array(head), payload);
}

/** TCP flag names accepted by `tcp()`. */
export type TcpFlagName = "FIN" | "SYN" | "RST" | "PSH" | "ACK" | "URG" | "ECE" | "CWR" | "NS";

const FLAG_BITS: Record<Exclude<TcpFlagName, "NS">, number> = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
};

/** 20-byte TCP header (plus `payload`). */
export function tcp(
  sport: number,
  dport: number,
  flags: TcpFlagName[],
  payload: Uint8Array = new Uint8Array(),
): Uint8Array {
  let bits = 0;
  for (const f of flags) if (f !== "NS") bits |= FLAG_BITS[f];
  const head = [
    ...u16(sport),
    ...u16(dport),
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0x50 | (flags.includes("NS") ? 1 : 0),
    bits,
    ...u16(65535),
    0,
    0,
    0,
    0,
  ];
  return concat(new Uint8Array(head), payload);
}

/** UDP header (plus `payload`). */
export function udp(sport: number, dport: number, payload: Uint8Array = new Uint8Array()) {
  return concat(
    new Uint8Array([...u16(sport), ...u16(dport), ...u16(8 + payload.length), 0, 0]),
    payload,
  );
}

/** SCTP common header (plus `payload`). */
export function sctp(sport: number, dport: number, payload: Uint8Array = new Uint8Array()) {
  return concat(new Uint8Array([...u16(sport), ...u16(dport), 0, 0, 0, 0, 0, 0, 0, 0]), payload);
}

/** ICMPv4 or ICMPv6 header with id 1, sequence 1 (plus `payload`). */
export function icmp(type: number, code: number, payload: Uint8Array = new Uint8Array()) {
  return concat(new Uint8Array([type, code, 0, 0, 0, 1, 0, 1]), payload);
}
