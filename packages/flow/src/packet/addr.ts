/** Address text formats, matching Go's net.HardwareAddr / net.IP String(). */

function hex2(b: number): string {
  return b.toString(16).padStart(2, "0");
}

/** MAC address at `offset` as lower-case "aa:bb:cc:dd:ee:ff". */
export function formatMac(bytes: Uint8Array, offset: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(hex2(bytes[offset + i] ?? 0));
  return parts.join(":");
}

/** IPv4 address at `offset` as a dotted quad. */
export function formatIPv4(bytes: Uint8Array, offset: number): string {
  return `${bytes[offset] ?? 0}.${bytes[offset + 1] ?? 0}.${bytes[offset + 2] ?? 0}.${bytes[offset + 3] ?? 0}`;
}

/**
 * IPv6 address at `offset` in RFC 5952 form (lower-case, the first longest run
 * of two or more zero groups as "::"). IPv4-mapped addresses print as dotted
 * quads, like Go's net.IP.String(), which Hubble uses.
 */
export function formatIPv6(bytes: Uint8Array, offset: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) {
    groups.push(((bytes[offset + 2 * i] ?? 0) << 8) | (bytes[offset + 2 * i + 1] ?? 0));
  }
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) return formatIPv4(bytes, offset + 12);

  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const text = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return text(groups);
  return `${text(groups.slice(0, bestStart))}::${text(groups.slice(bestStart + bestLen))}`;
}
