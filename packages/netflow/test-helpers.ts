/**
 * Test-only helpers of @periscope/netflow: flow records built from a few fields, and a
 * small IPFIX decoder that reads messages byte by byte without the encoder's tables, so an
 * encoder mistake cannot cancel itself out.
 */
import type { NetflowRecord } from "./src/record.ts";

/** An address literal ("10.0.0.1", "fd00::2") as 4 or 16 bytes. */
export function addrBytes(text: string): Uint8Array {
  if (!text.includes(":")) return Uint8Array.from(text.split(".").map(Number));
  const [head = "", tail = ""] = text.split("::");
  const words = (s: string) => (s === "" ? [] : s.split(":").map((w) => Number.parseInt(w, 16)));
  const h = words(head);
  const t = text.includes("::") ? words(tail) : [];
  const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** A valid IPv4 TCP record; `over` replaces any field. */
export function sampleNetflowRecord(over: Partial<NetflowRecord> = {}): NetflowRecord {
  return {
    family: 4,
    srcAddr: addrBytes("10.1.2.3"),
    dstAddr: addrBytes("10.4.5.6"),
    srcPort: 40000,
    dstPort: 5201,
    proto: 6,
    icmpType: 0,
    icmpCode: 0,
    ifindex: 7,
    ifname: "veth0",
    direction: "ingress",
    bytes: 123456n,
    packets: 89n,
    firstSeenMs: 1_760_000_000_000,
    lastSeenMs: 1_760_000_004_321,
    tcpFlags: 0x1b,
    dscp: 46,
    srcMac: Uint8Array.from([2, 0, 0, 0, 0, 1]),
    dstMac: Uint8Array.from([2, 0, 0, 0, 0, 2]),
    duplicate: false,
    endReason: "idle",
    node: "node-a",
    agentIp: "192.0.2.1",
    ...over,
  };
}

/** A decoded message header. */
export interface DecodedHeader {
  version: number;
  length: number;
  exportSecs: number;
  sequence: number;
  domain: number;
}

/** One template as announced in a template set. */
export interface DecodedTemplate {
  id: number;
  fields: { id: number; length: number }[];
}

/** One data record: template id and each element's raw bytes by element id. */
export interface DecodedRecord {
  templateId: number;
  fields: Map<number, Uint8Array>;
}

/** A decoded message. */
export interface DecodedMessage {
  header: DecodedHeader;
  /** Set ids in order. */
  setIds: number[];
  templates: DecodedTemplate[];
  records: DecodedRecord[];
}

/**
 * Decodes one message, using and extending `known` (template id → template) so data
 * sets can be read in later messages. Throws on any length that does not add up.
 */
export function decodeIpfixMessage(
  msg: Uint8Array,
  known: Map<number, DecodedTemplate> = new Map(),
): DecodedMessage {
  const v = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  if (msg.length < 16) throw new Error(`message of ${msg.length} bytes is shorter than a header`);
  const header: DecodedHeader = {
    version: v.getUint16(0),
    length: v.getUint16(2),
    exportSecs: v.getUint32(4),
    sequence: v.getUint32(8),
    domain: v.getUint32(12),
  };
  if (header.length !== msg.length)
    throw new Error(`header length ${header.length} but message has ${msg.length} bytes`);
  const out: DecodedMessage = { header, setIds: [], templates: [], records: [] };
  let off = 16;
  while (off < msg.length) {
    if (off + 4 > msg.length) throw new Error(`set header cut at ${off}`);
    const setId = v.getUint16(off);
    const setLen = v.getUint16(off + 2);
    if (setLen < 4 || off + setLen > msg.length)
      throw new Error(`set ${setId} at ${off} has bad length ${setLen}`);
    out.setIds.push(setId);
    const end = off + setLen;
    let p = off + 4;
    if (setId === 2) {
      while (p + 4 <= end) {
        const t: DecodedTemplate = { id: v.getUint16(p), fields: [] };
        const count = v.getUint16(p + 2);
        p += 4;
        for (let i = 0; i < count; i++, p += 4) {
          t.fields.push({ id: v.getUint16(p), length: v.getUint16(p + 2) });
        }
        known.set(t.id, t);
        out.templates.push(t);
      }
    } else if (setId >= 256) {
      const t = known.get(setId);
      if (t === undefined) throw new Error(`data set ${setId} before its template`);
      const recLen = t.fields.reduce((n, f) => n + f.length, 0);
      while (p + recLen <= end) {
        const fields = new Map<number, Uint8Array>();
        for (const f of t.fields) {
          fields.set(f.id, msg.slice(p, p + f.length));
          p += f.length;
        }
        out.records.push({ templateId: setId, fields });
      }
    }
    if (p !== end) throw new Error(`set ${setId} at ${off}: ${end - p} bytes left over`);
    off = end;
  }
  return out;
}

/** An unsigned big-endian integer field as a bigint. */
export function fieldUint(r: DecodedRecord, id: number): bigint {
  const b = r.fields.get(id);
  if (b === undefined) throw new Error(`record has no element ${id}`);
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n;
}

/** A field's raw bytes. */
export function fieldBytes(r: DecodedRecord, id: number): Uint8Array {
  const b = r.fields.get(id);
  if (b === undefined) throw new Error(`record has no element ${id}`);
  return b;
}
