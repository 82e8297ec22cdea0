/**
 * Decorates a due flow of the cache into the exporters' NetflowRecord: wall-clock
 * times, interface name, node, agent IP and, where the endpoint registry knows them,
 * the endpoints' pod names; and encodes records as periscope.netflow.v1 protobuf.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { parseIp } from "@periscope/model";
import type { NetflowEndpoint, NetflowEndReason, NetflowRecord } from "@periscope/netflow";
import { netflowV1 } from "@periscope/proto";
import type { DueFlow } from "./netflow-cache.ts";

/** What a record is decorated with. */
export interface NetflowDecoration {
  readonly node: string;
  readonly agentIp: string;
  /** Name of interface `ifindex` of the namespace with `netnsCookie` ("" when unknown). */
  ifname(netnsCookie: bigint, ifindex: number): string;
  /** Wall-clock ms of a flow-table time (CLOCK_MONOTONIC ns). */
  wallMs(monotonicNs: bigint): number;
  /** The pod behind an address, if known. */
  endpoint?(addr: Uint8Array): NetflowEndpoint | undefined;
}

/** The record of `flow`: fallback flows end as "fallback", the others by their eviction. */
export function toNetflowRecord(flow: DueFlow, d: NetflowDecoration): NetflowRecord {
  const { key: k, counters: c } = flow;
  const endReason: NetflowEndReason = flow.fallback ? "fallback" : flow.reason;
  const firstSeenMs = d.wallMs(c.firstSeenNs);
  const src = d.endpoint?.(k.srcAddr);
  const dst = d.endpoint?.(k.dstAddr);
  return {
    family: k.family,
    srcAddr: k.srcAddr,
    dstAddr: k.dstAddr,
    srcPort: k.srcPort,
    dstPort: k.dstPort,
    proto: k.proto,
    icmpType: k.icmpType,
    icmpCode: k.icmpCode,
    ifindex: k.ifindex,
    ifname: d.ifname(k.netnsCookie, k.ifindex),
    direction: k.direction === 1 ? "egress" : "ingress",
    bytes: c.bytes,
    packets: c.packets,
    firstSeenMs,
    lastSeenMs: Math.max(firstSeenMs, d.wallMs(c.lastSeenNs)),
    tcpFlags: c.tcpFlags,
    dscp: c.dscp,
    srcMac: c.srcMac,
    dstMac: c.dstMac,
    ...(c.rttNs > 0n ? { rttNs: c.rttNs } : {}),
    ...(c.dropPackets > 0n
      ? { drops: { packets: c.dropPackets, bytes: c.dropBytes, lastReason: c.dropReason } }
      : {}),
    duplicate: flow.duplicate,
    endReason,
    node: d.node,
    agentIp: d.agentIp,
    ...(src !== undefined ? { srcEndpoint: src } : {}),
    ...(dst !== undefined ? { dstEndpoint: dst } : {}),
  };
}

const END_REASON: Record<NetflowEndReason, netflowV1.EndReason> = {
  idle: netflowV1.EndReason.IDLE,
  active: netflowV1.EndReason.ACTIVE,
  shutdown: netflowV1.EndReason.SHUTDOWN,
  fallback: netflowV1.EndReason.FALLBACK,
};

function ipMessage(addr: Uint8Array): netflowV1.Ip {
  if (addr.length === 4) {
    const v4 = new DataView(addr.buffer, addr.byteOffset, 4).getUint32(0);
    return create(netflowV1.IpSchema, { ipFamily: { case: "ipv4", value: v4 } });
  }
  return create(netflowV1.IpSchema, { ipFamily: { case: "ipv6", value: addr } });
}

function macNumber(mac: Uint8Array): bigint {
  let n = 0n;
  for (const b of mac) n = (n << 8n) | BigInt(b);
  return n;
}

/** One record as a periscope.netflow.v1.NetflowRecord message. */
export function netflowMessage(r: NetflowRecord): netflowV1.NetflowRecord {
  return create(netflowV1.NetflowRecordSchema, {
    ethProtocol: r.family === 4 ? 0x0800 : 0x86dd,
    direction: r.direction === "egress" ? 1 : 0,
    timeFlowStart: timestampFromMs(r.firstSeenMs),
    timeFlowEnd: timestampFromMs(r.lastSeenMs),
    dataLink: { srcMac: macNumber(r.srcMac), dstMac: macNumber(r.dstMac) },
    network: { srcAddr: ipMessage(r.srcAddr), dstAddr: ipMessage(r.dstAddr), dscp: r.dscp },
    transport: { srcPort: r.srcPort, dstPort: r.dstPort, protocol: r.proto },
    bytes: r.bytes,
    packets: r.packets,
    interface: r.ifname,
    duplicate: r.duplicate,
    agentIp: ipMessage(parseIp(r.agentIp) ?? new Uint8Array(4)),
    flags: r.tcpFlags,
    icmpType: r.icmpType,
    icmpCode: r.icmpCode,
    ...(r.drops !== undefined
      ? {
          pktDropBytes: r.drops.bytes,
          pktDropPackets: r.drops.packets,
          pktDropLatestDropCause: r.drops.lastReason,
        }
      : {}),
    ...(r.rttNs !== undefined
      ? {
          timeFlowRtt: {
            seconds: r.rttNs / 1_000_000_000n,
            nanos: Number(r.rttNs % 1_000_000_000n),
          },
        }
      : {}),
    ifindex: r.ifindex,
    endReason: END_REASON[r.endReason],
    node: r.node,
    ...(r.srcEndpoint !== undefined ? { srcEndpoint: r.srcEndpoint } : {}),
    ...(r.dstEndpoint !== undefined ? { dstEndpoint: r.dstEndpoint } : {}),
  });
}

/** Losses a message reports (counts since the previous message). */
export interface NetflowLossCounts {
  fallbackLostPackets: bigint;
  exportDroppedRecords: bigint;
}

/** Records (and what was lost since the previous message) as the payload of `periscope.netflows.<node>`. */
export function encodeNetflowRecords(
  records: readonly NetflowRecord[],
  lost?: NetflowLossCounts,
): Uint8Array {
  const some =
    lost !== undefined && (lost.fallbackLostPackets > 0n || lost.exportDroppedRecords > 0n);
  return toBinary(
    netflowV1.NetflowRecordsSchema,
    create(netflowV1.NetflowRecordsSchema, {
      entries: records.map(netflowMessage),
      ...(some ? { lost } : {}),
    }),
  );
}
