/** Why a flow record left the kernel table (IPFIX flowEndReason is derived from it). */
export type NetflowEndReason = "idle" | "active" | "shutdown" | "fallback";

/** The hook that saw the packets: IPFIX flowDirection 0 (ingress) or 1 (egress). */
export type NetflowDirection = "ingress" | "egress";

/** Packets the kernel dropped inside this flow. */
export interface NetflowDrops {
  packets: bigint;
  bytes: bigint;
  /** Last kernel skb_drop_reason seen for the flow. */
  lastReason: number;
}

/** Pod identity of one end of a flow, where the enricher knows it. */
export interface NetflowEndpoint {
  namespace: string;
  podName: string;
}

/** One flow record evicted from the kernel (or the fallback accounter): one direction at one interface. */
export interface NetflowRecord {
  family: 4 | 6;
  /** 4 or 16 bytes. */
  srcAddr: Uint8Array;
  dstAddr: Uint8Array;
  /** 0 for ICMP. */
  srcPort: number;
  dstPort: number;
  /** IPPROTO_* */
  proto: number;
  /** 0 unless ICMP/ICMPv6. */
  icmpType: number;
  icmpCode: number;
  ifindex: number;
  ifname: string;
  direction: NetflowDirection;
  /** L3 bytes (IP total length), as IPFIX octetDeltaCount. */
  bytes: bigint;
  packets: bigint;
  /** Wall clock, ms since epoch. */
  firstSeenMs: number;
  lastSeenMs: number;
  /** Union of the low 8 bits of the TCP flags. */
  tcpFlags: number;
  dscp: number;
  /** 6 bytes (zeros on L3 devices). */
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  /** TCP handshake RTT where measured. */
  rttNs?: bigint;
  drops?: NetflowDrops;
  /** Seen first on another interface (only when dedupe marks instead of dropping). */
  duplicate: boolean;
  endReason: NetflowEndReason;
  node: string;
  agentIp: string;
  srcEndpoint?: NetflowEndpoint;
  dstEndpoint?: NetflowEndpoint;
}
