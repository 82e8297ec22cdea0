/** Address text formats, matching Go's net.HardwareAddr / net.IP String(). */

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
