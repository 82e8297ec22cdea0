/** IP address and CIDR parsing for filters (IPv4, IPv6, IPv4-mapped IPv6). */

/** A parsed address: 4 bytes for IPv4, 16 for IPv6. */
export type IpBytes = Uint8Array;

function parseIPv4(text: string): IpBytes | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (const [i, part] of parts.entries()) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseIPv6(text: string): IpBytes | undefined {
  let groupsText = text;
  let tail4: IpBytes | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".")) {
    tail4 = parseIPv4(text.slice(lastColon + 1));
    if (!tail4) return undefined;
    groupsText = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = groupsText.split("::");
  if (halves.length > 2) return undefined;
  const parse = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    for (const g of s.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const head = parse(halves[0] ?? "");
  const tail = halves.length === 2 ? parse(halves[1] ?? "") : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [
    ...head,
    ...new Array<number>(halves.length === 2 ? missing : 0).fill(0),
    ...tail,
  ];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (tail4) out.set(tail4, 12);
  return out;
}

/** Unwrap ::ffff:a.b.c.d to 4 bytes, as Go's net.IP comparisons do. */
function canonical(ip: IpBytes): IpBytes {
  if (ip.length !== 16) return ip;
  for (let i = 0; i < 10; i++) if (ip[i] !== 0) return ip;
  if (ip[10] !== 0xff || ip[11] !== 0xff) return ip;
  return ip.subarray(12);
}

/** Parse an IPv4 or IPv6 address; undefined when it is not one. */
export function parseIpAddress(text: string): IpBytes | undefined {
  const ip = text.includes(":") ? parseIPv6(text) : parseIPv4(text);
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
  const raw = addrText.includes(":") ? parseIPv6(addrText) : parseIPv4(addrText);
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
