import { formatIPv4, formatIPv6 } from "@periscope/model";
import { L7ParseError } from "./errors.ts";

/** DNS header length, bytes (RFC 1035 4.1.1). */
export const DNS_HEADER_LEN = 12;
/** Questions read from one message at most; the rest are skipped. */
export const DNS_MAX_QUESTIONS = 8;
/** Answer records read from one message at most; the rest are ignored. */
export const DNS_MAX_ANSWERS = 64;
/** Compression pointers followed in one name at most (loop protection). */
const MAX_POINTERS = 32;
/** Longest name on the wire, RFC 1035 3.1. */
const MAX_NAME_LEN = 255;

const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_AAAA = 28;

/** Resource record type names, as gopacket (and so Hubble) prints them. */
const TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [1, "A"],
  [2, "NS"],
  [3, "MD"],
  [4, "MF"],
  [5, "CNAME"],
  [6, "SOA"],
  [7, "MB"],
  [8, "MG"],
  [9, "MR"],
  [10, "NULL"],
  [11, "WKS"],
  [12, "PTR"],
  [13, "HINFO"],
  [14, "MINFO"],
  [15, "MX"],
  [16, "TXT"],
  [28, "AAAA"],
  [33, "SRV"],
  [41, "OPT"],
  [64, "SVCB"],
  [65, "HTTPS"],
  [255, "ANY"],
  [257, "URI"],
]);

/** Response code names, as gopacket prints them (Hubble's "RCode: Non-Existent Domain"). */
const RCODE_NAMES: readonly string[] = [
  "No Error",
  "Format Error",
  "Server Failure",
  "Non-Existent Domain",
  "Not Implemented",
  "Query Refused",
  "Name Exists when it should not",
  "RR Set Exists when it should not",
  "RR Set that should exist does not",
  "Server Not Authoritative for zone",
  "Name not contained in zone",
];

/** Name of a resource record type ("A", "AAAA", "Unknown" for types gopacket does not name). */
export function dnsTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? "Unknown";
}

/** Text of a response code as Hubble's summary shows it. */
export function dnsRcodeText(rcode: number): string {
  return RCODE_NAMES[rcode] ?? "Unknown";
}

/** One question. */
export interface DnsQuestion {
  /** Lower-case name with a trailing dot ("example.com."). */
  name: string;
  type: number;
}

/** One answer record. */
export interface DnsAnswer {
  /** Owner name, lower case with a trailing dot. */
  name: string;
  type: number;
  /** Seconds. */
  ttl: number;
  /** Address text for A / AAAA records. */
  ip?: string;
  /** Target name (lower case, trailing dot) for CNAME records. */
  target?: string;
}

/** A parsed DNS message (header, questions, answer section). */
export interface DnsMessage {
  id: number;
  /** True for responses. */
  qr: boolean;
  opcode: number;
  rcode: number;
  questions: DnsQuestion[];
  answers: DnsAnswer[];
}

function fail(reason: "truncated" | "malformed", message: string): never {
  throw new L7ParseError("dns", reason, message);
}

/**
 * Reads the (possibly compressed) name at `offset`; returns it and the offset
 * after it in the message (after the first pointer when compressed). Pointers
 * must point backwards and are followed MAX_POINTERS times at most.
 */
function readName(
  bytes: Uint8Array,
  start: number,
  end: number,
  offset: number,
): { name: string; next: number } {
  const labels: string[] = [];
  let length = 0;
  let pos = offset;
  let next = -1;
  let jumps = 0;
  for (;;) {
    if (pos >= end) fail("truncated", "name runs past the end");
    const len = bytes[pos] ?? 0;
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= end) fail("truncated", "name pointer runs past the end");
      const target = start + (((len & 0x3f) << 8) | (bytes[pos + 1] ?? 0));
      if (++jumps > MAX_POINTERS) fail("malformed", "too many name compression pointers");
      if (target >= pos) fail("malformed", "name compression pointer does not point backwards");
      if (next < 0) next = pos + 2;
      pos = target;
      continue;
    }
    if (kind !== 0) fail("malformed", `label type 0x${kind.toString(16)}`);
    if (pos + 1 + len > end) fail("truncated", "label runs past the end");
    length += len + 1;
    if (length > MAX_NAME_LEN) fail("malformed", `name longer than ${MAX_NAME_LEN} bytes`);
    let label = "";
    for (let i = pos + 1; i < pos + 1 + len; i++) {
      let c = bytes[i] ?? 0;
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      // printable ASCII except '.' and '\' as is, anything else escaped like dig does
      label +=
        c > 0x20 && c < 0x7f && c !== 0x2e && c !== 0x5c
          ? String.fromCharCode(c)
          : `\\${c.toString().padStart(3, "0")}`;
    }
    labels.push(label);
    pos += 1 + len;
  }
  return { name: labels.length === 0 ? "." : `${labels.join(".")}.`, next };
}

function u16(bytes: Uint8Array, at: number): number {
  return ((bytes[at] ?? 0) << 8) | (bytes[at + 1] ?? 0);
}

function u32(bytes: Uint8Array, at: number): number {
  return (u16(bytes, at) * 0x10000 + u16(bytes, at + 2)) >>> 0;
}

/**
 * Parses one DNS message in `bytes[start, end)`: header, up to DNS_MAX_QUESTIONS
 * questions and up to DNS_MAX_ANSWERS answer records (authority and additional
 * sections are not read). Never reads outside the range.
 * @throws L7ParseError (`truncated` or `malformed`) for anything else.
 */
export function parseDnsMessage(
  bytes: Uint8Array,
  start = 0,
  end: number = bytes.length,
): DnsMessage {
  const stop = Math.min(end, bytes.length);
  if (stop - start < DNS_HEADER_LEN) fail("truncated", `${stop - start} bytes < header`);
  const flags = u16(bytes, start + 2);
  const qdcount = u16(bytes, start + 4);
  const ancount = u16(bytes, start + 6);
  const msg: DnsMessage = {
    id: u16(bytes, start),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0x0f,
    rcode: flags & 0x0f,
    questions: [],
    answers: [],
  };
  if (msg.opcode > 6) fail("malformed", `opcode ${msg.opcode}`);
  if (qdcount === 0 && !msg.qr) fail("malformed", "query without a question");
  let pos = start + DNS_HEADER_LEN;
  for (let i = 0; i < qdcount; i++) {
    const { name, next } = readName(bytes, start, stop, pos);
    if (next + 4 > stop) fail("truncated", "question runs past the end");
    if (i < DNS_MAX_QUESTIONS) msg.questions.push({ name, type: u16(bytes, next) });
    pos = next + 4;
  }
  const answers = Math.min(ancount, DNS_MAX_ANSWERS);
  for (let i = 0; i < answers; i++) {
    const { name, next } = readName(bytes, start, stop, pos);
    if (next + 10 > stop) fail("truncated", "answer record runs past the end");
    const type = u16(bytes, next);
    const ttl = u32(bytes, next + 4);
    const rdlength = u16(bytes, next + 8);
    const rdata = next + 10;
    if (rdata + rdlength > stop) fail("truncated", "answer data runs past the end");
    const answer: DnsAnswer = { name, type, ttl };
    if (type === TYPE_A) {
      if (rdlength !== 4) fail("malformed", `A record of ${rdlength} bytes`);
      answer.ip = formatIPv4(bytes, rdata);
    } else if (type === TYPE_AAAA) {
      if (rdlength !== 16) fail("malformed", `AAAA record of ${rdlength} bytes`);
      answer.ip = formatIPv6(bytes, rdata);
    } else if (type === TYPE_CNAME) {
      answer.target = readName(bytes, start, rdata + rdlength, rdata).name;
    }
    msg.answers.push(answer);
    pos = rdata + rdlength;
  }
  return msg;
}

/** Result of reading length-prefixed DNS messages from a TCP byte stream. */
export interface DnsStreamChunk {
  /** Messages complete in the bytes given. */
  messages: DnsMessage[];
  /** Bytes used by those messages (with their prefixes); the rest awaits more data. */
  consumed: number;
}

/**
 * Reads DNS-over-TCP messages (RFC 1035 4.2.2: each preceded by a two-byte
 * length) from `bytes[start, end)`, at most `maxMessages`. A message whose
 * bytes are not all there yet is left for later (`consumed` stops before it).
 * @throws L7ParseError when a complete message does not parse or a length is zero.
 */
export function parseDnsTcpStream(
  bytes: Uint8Array,
  start = 0,
  end: number = bytes.length,
  maxMessages = 16,
): DnsStreamChunk {
  const stop = Math.min(end, bytes.length);
  const messages: DnsMessage[] = [];
  let pos = start;
  while (messages.length < maxMessages && stop - pos >= 2) {
    const len = u16(bytes, pos);
    if (len < DNS_HEADER_LEN) fail("malformed", `TCP length prefix ${len} < header`);
    if (pos + 2 + len > stop) break;
    messages.push(parseDnsMessage(bytes, pos + 2, pos + 2 + len));
    pos += 2 + len;
  }
  return { messages, consumed: pos - start };
}
