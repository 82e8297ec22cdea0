import type { NetflowRecord } from "./record.ts";

const U32_MAX = 0xffff_ffff;
const U64_MAX = (1n << 64n) - 1n;

function badUint(value: number, max: number): boolean {
  return !Number.isInteger(value) || value < 0 || value > max;
}

function badU64(value: bigint): boolean {
  return value < 0n || value > U64_MAX;
}

/**
 * Why `r` cannot be exported ("srcAddr has 5 bytes, IPv4 needs 4"), or undefined when it
 * can. Checked once where records enter the export queue, so exporters may trust every
 * field's range.
 */
export function netflowRecordProblem(r: NetflowRecord): string | undefined {
  if (r.family !== 4 && r.family !== 6) return `family must be 4 or 6, got ${String(r.family)}`;
  const addrLen = r.family === 4 ? 4 : 16;
  if (r.srcAddr.length !== addrLen)
    return `srcAddr has ${r.srcAddr.length} bytes, IPv${r.family} needs ${addrLen}`;
  if (r.dstAddr.length !== addrLen)
    return `dstAddr has ${r.dstAddr.length} bytes, IPv${r.family} needs ${addrLen}`;
  if (r.srcMac.length !== 6) return `srcMac has ${r.srcMac.length} bytes, needs 6`;
  if (r.dstMac.length !== 6) return `dstMac has ${r.dstMac.length} bytes, needs 6`;
  if (badUint(r.srcPort, 0xffff)) return `srcPort ${r.srcPort} is not a port`;
  if (badUint(r.dstPort, 0xffff)) return `dstPort ${r.dstPort} is not a port`;
  if (badUint(r.proto, 0xff)) return `proto ${r.proto} is not an IP protocol number`;
  if (badUint(r.icmpType, 0xff)) return `icmpType ${r.icmpType} out of range`;
  if (badUint(r.icmpCode, 0xff)) return `icmpCode ${r.icmpCode} out of range`;
  if (badUint(r.ifindex, U32_MAX)) return `ifindex ${r.ifindex} out of range`;
  if (badUint(r.dscp, 63)) return `dscp ${r.dscp} out of range 0..63`;
  if (badUint(r.tcpFlags, 0xffff)) return `tcpFlags ${r.tcpFlags} out of range`;
  if (r.direction !== "ingress" && r.direction !== "egress")
    return `direction must be ingress or egress, got ${String(r.direction)}`;
  if (badU64(r.bytes)) return `bytes ${r.bytes} out of range`;
  if (badU64(r.packets)) return `packets ${r.packets} out of range`;
  if (!Number.isSafeInteger(r.firstSeenMs) || r.firstSeenMs < 0)
    return `firstSeenMs ${r.firstSeenMs} is not a time`;
  if (!Number.isSafeInteger(r.lastSeenMs) || r.lastSeenMs < r.firstSeenMs)
    return `lastSeenMs ${r.lastSeenMs} is before firstSeenMs ${r.firstSeenMs}`;
  if (r.drops !== undefined && (badU64(r.drops.packets) || badU64(r.drops.bytes)))
    return "drop counts out of range";
  return undefined;
}
