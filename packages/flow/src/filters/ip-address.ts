/** IP address and CIDR parsing for filters (IPv4, IPv6, IPv4-mapped IPv6). */
import { parseIp } from "@periscope/model";

/** A parsed address: 4 bytes for IPv4, 16 for IPv6. */
export type IpBytes = Uint8Array;

/** Unwrap ::ffff:a.b.c.d to 4 bytes, as Go's net.IP comparisons do. */
function canonical(ip: IpBytes): IpBytes {
  if (ip.length !== 16) return ip;
  for (let i = 0; i < 10; i++) if (ip[i] !== 0) return ip;
  if (ip[10] !== 0xff || ip[11] !== 0xff) return ip;
  return ip.subarray(12);
}

/** Parse an IPv4 or IPv6 address; undefined when it is not one. */
export function parseIpAddress(text: string): IpBytes | undefined {
  const ip = parseIp(text);
  return ip ? canonical(ip) : undefined;
}

/** A parsed network: address bytes (host bits cleared) and prefix length. */
export interface Cidr {
  network: IpBytes;
  prefix: number;
}

/** Parse "addr/prefix"; undefined when malformed or the prefix is out of range. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const addrText = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(prefixText)) return undefined;
  const raw = parseIp(addrText);
  if (!raw) return undefined;
  let prefix = Number(prefixText);
  if (prefix > raw.length * 8) return undefined;
  let network = raw;
  const unwrapped = canonical(raw);
  if (unwrapped.length === 4 && raw.length === 16) {
    if (prefix < 96) return { network: raw, prefix };
    network = unwrapped;
    prefix -= 96;
  }
  return { network: maskBytes(network, prefix), prefix };
}

function maskBytes(ip: IpBytes, prefix: number): IpBytes {
  const out = new Uint8Array(ip);
  for (let bit = prefix; bit < out.length * 8; bit++) {
    const i = bit >> 3;
    out[i] = (out[i] ?? 0) & ~(0x80 >> (bit & 7));
  }
  return out;
}

/** True when `ip` lies in `cidr` (same address family only). */
export function cidrContains(cidr: Cidr, ip: IpBytes): boolean {
  if (ip.length !== cidr.network.length) return false;
  const masked = maskBytes(ip, cidr.prefix);
  return masked.every((b, i) => b === cidr.network[i]);
}

/** True when two parsed addresses are equal. */
export function ipEqual(a: IpBytes, b: IpBytes): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
