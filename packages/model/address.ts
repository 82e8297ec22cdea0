import { isIP } from "node:net";

/** Address text: formats matching Go's net.HardwareAddr / net.IP String(), and IP parsing. */

/** Two-digit lower-case hex of every byte value. */
const HEX2: readonly string[] = Array.from({ length: 256 }, (_, b) =>
  b.toString(16).padStart(2, "0"),
);

function hex2(b: number | undefined): string {
  return HEX2[b ?? 0] ?? "00";
}

/** MAC address at `offset` as lower-case "aa:bb:cc:dd:ee:ff". */
export function formatMac(bytes: Uint8Array, offset: number): string {
  return `${hex2(bytes[offset])}:${hex2(bytes[offset + 1])}:${hex2(bytes[offset + 2])}:${hex2(bytes[offset + 3])}:${hex2(bytes[offset + 4])}:${hex2(bytes[offset + 5])}`;
}

/** IPv4 address at `offset` as a dotted quad. */
export function formatIPv4(bytes: Uint8Array, offset: number): string {
  return `${bytes[offset] ?? 0}.${bytes[offset + 1] ?? 0}.${bytes[offset + 2] ?? 0}.${bytes[offset + 3] ?? 0}`;
}

function group(bytes: Uint8Array, offset: number, i: number): number {
  return ((bytes[offset + 2 * i] ?? 0) << 8) | (bytes[offset + 2 * i + 1] ?? 0);
}

/**
 * IPv6 address at `offset` in RFC 5952 form (lower-case, the first longest run
 * of two or more zero groups as "::"). IPv4-mapped addresses print as dotted
 * quads, like Go's net.IP.String(), which Hubble uses.
 */
export function formatIPv6(bytes: Uint8Array, offset: number): string {
  let bestStart = -1;
  let bestLen = 0;
  let runStart = -1;
  let leadingZeros = 0;
  for (let i = 0; i < 8; i++) {
    if (group(bytes, offset, i) !== 0) {
      runStart = -1;
      continue;
    }
    if (runStart < 0) runStart = i;
    if (runStart === 0) leadingZeros = i + 1;
    const len = i + 1 - runStart;
    if (len > bestLen && len >= 2) {
      bestStart = runStart;
      bestLen = len;
    }
  }
  if (leadingZeros >= 5 && group(bytes, offset, 5) === 0xffff) {
    return formatIPv4(bytes, offset + 12);
  }
  let out = "";
  let afterGap = false;
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += "::";
      i += bestLen - 1;
      afterGap = true;
      continue;
    }
    if (i > 0 && !afterGap) out += ":";
    afterGap = false;
    out += group(bytes, offset, i).toString(16);
  }
  return out;
}

/**
 * Bytes of an IPv4 (4 bytes) or IPv6 (16 bytes) address in text form, also
 * IPv6 with an embedded dotted quad; IPv4-mapped addresses stay 16 bytes.
 * Undefined when `text` is not an address (zones like `%eth0` included).
 * Validation is node:net's; not for hot paths.
 */
export function parseIp(text: string): Uint8Array | undefined {
  const family = isIP(text);
  if (family === 4) return ipv4Bytes(text);
  if (family === 6 && !text.includes("%")) return ipv6Bytes(text);
  return undefined;
}

/**
 * Canonical text of an IP address: dotted quad for IPv4 and IPv4-mapped
 * IPv6, RFC 5952 for other IPv6 (the text the flow decoder produces).
 * Undefined when `text` is not an address.
 */
export function canonicalIp(text: string): string | undefined {
  const bytes = parseIp(text);
  if (bytes === undefined) return undefined;
  return bytes.length === 4 ? formatIPv4(bytes, 0) : formatIPv6(bytes, 0);
}

function ipv4Bytes(text: string): Uint8Array {
  return new Uint8Array(text.split(".").map(Number));
}

/** `text` is a valid IPv6 address without zone (checked by the caller). */
function ipv6Bytes(text: string): Uint8Array {
  const out = new Uint8Array(16);
  let groupsText = text;
  if (text.includes(".")) {
    const lastColon = text.lastIndexOf(":");
    out.set(ipv4Bytes(text.slice(lastColon + 1)), 12);
    groupsText = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = "", tail] = groupsText.split("::");
  const groups = (s: string): number[] =>
    s === "" ? [] : s.split(":").map((g) => Number.parseInt(g, 16));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  for (const [i, g] of all.entries()) {
    if (i >= 6 && text.includes(".")) break;
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  }
  return out;
}
