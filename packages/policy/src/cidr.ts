import { formatIPv4, formatIPv6, parseIp } from "@periscope/model";
import type { Cidr } from "./model.ts";

/**
 * Parses `address[/len]` (IPv4 or IPv6; no length = a single address). Host bits
 * are cleared, so "10.1.2.3/8" becomes 10.0.0.0/8. Returns an error text instead of
 * throwing so callers can name the field.
 */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const addr = parseIp(addrText.trim());
  if (addr === undefined) return `"${text}" is not an IP address or CIDR`;
  const bits = addr.length * 8;
  let prefixLen = bits;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits) {
      return `"${text}" has a bad prefix length (0..${bits})`;
    }
    prefixLen = Number(lenText);
  }
  const masked = addr.slice();
  for (let i = 0; i < masked.length; i++) {
    const keep = Math.max(0, Math.min(8, prefixLen - i * 8));
    masked[i] = (masked[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  const family = addr.length === 4 ? 4 : 6;
  const shown = family === 4 ? formatIPv4(masked, 0) : formatIPv6(masked, 0);
  return { text: `${shown}/${prefixLen}`, family, addr: masked, prefixLen };
}

/** True when `addr` (4 or 16 bytes) lies in `cidr`. */
export function cidrContains(cidr: Cidr, addr: Uint8Array): boolean {
  if (addr.length !== cidr.addr.length) return false;
  for (let i = 0; i < addr.length; i++) {
    const keep = Math.max(0, Math.min(8, cidr.prefixLen - i * 8));
    const mask = (0xff << (8 - keep)) & 0xff;
    if (((addr[i] ?? 0) & mask) !== (cidr.addr[i] ?? 0)) return false;
  }
  return true;
}
