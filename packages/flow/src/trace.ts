import { type Timestamp, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { type EndpointInfo, MESSAGE_TYPE } from "@periscope/model";
import {
  type CiliumEventType,
  CiliumEventTypeSchema,
  type Endpoint,
  EndpointSchema,
  EthernetSchema,
  type Flow,
  FlowSchema,
  FlowType,
  ICMPv4Schema,
  ICMPv6Schema,
  IPSchema,
  IPVersion,
  type Layer4,
  Layer4Schema,
  NetworkInterfaceSchema,
  SCTPSchema,
  TCPFlagsSchema,
  TCPSchema,
  UDPSchema,
  Verdict,
} from "@periscope/proto";
import { FLAG_L3, TRACE_REASON, type TraceRecord } from "@periscope/wire";
import { messageFactory } from "./message.ts";
import { observationPoint, trafficDirection } from "./observation.ts";
import { decodePacket, type PayloadSink } from "./packet/decode.ts";
import type { DecodedPacket, L4Header } from "./packet/types.ts";
import { packetSummary } from "./summary.ts";

const newFlow = messageFactory(FlowSchema);
const newTimestamp = messageFactory(TimestampSchema);
const newEventType = messageFactory(CiliumEventTypeSchema);
const newEthernet = messageFactory(EthernetSchema);
const newIP = messageFactory(IPSchema);
const newLayer4 = messageFactory(Layer4Schema);
const newTCP = messageFactory(TCPSchema);
const newTCPFlags = messageFactory(TCPFlagsSchema);
const newUDP = messageFactory(UDPSchema);
const newSCTP = messageFactory(SCTPSchema);
const newICMPv4 = messageFactory(ICMPv4Schema);
const newICMPv6 = messageFactory(ICMPv6Schema);
const newEndpoint = messageFactory(EndpointSchema);
const newInterface = messageFactory(NetworkInterfaceSchema);

/** Everything decodeTraceFlow needs besides the record. */
export interface DecodeContext {
  /** Node that observed the packet (flow.node_name). */
  nodeName: string;
  /** CLOCK_REALTIME - CLOCK_BOOTTIME in ns: added to the record's boot-time stamp. */
  bootToRealtimeNs: bigint;
  /** Endpoint owning an IP, if known. */
  endpoint?(ip: string): EndpointInfo | undefined;
  /**
   * Interface name for an ifindex in the network namespace with this cookie (the
   * record's netns_cookie: ifindexes are per namespace), if known.
   */
  ifName?(ifindex: number, netnsCookie: bigint): string | undefined;
  /** Flow UUID generator; random v4 UUIDs when absent. */
  uuid?(): string;
}

/**
 * Turn a kernel trace record into the flow.Flow Hubble would produce for a
 * trace event: FORWARDED, L3_L4, event_type {4, obsPoint}, addresses, ports,
 * flags, endpoints, interface, summary, and from the kernel's connection
 * table trace_reason (record reason + 1) and is_reply (true for REPLY, false
 * for NEW/ESTABLISHED/RELATED/REOPENED, unset when the connection is unknown).
 * Records flagged FLAG_L3 (devices without an L2 header) start at the IP header.
 * A `sink` receives where the TCP/UDP payload sits in `rec.data` (for L7 parsing).
 *
 * Flows for the same EndpointInfo object share one flow.Endpoint message:
 * treat the returned flow as read-only below `source` / `destination`.
 * @throws PacketDecodeError when the captured packet is malformed.
 */
export function decodeTraceFlow(rec: TraceRecord, ctx: DecodeContext, sink?: PayloadSink): Flow {
  // tc hooks see Ethernet frames, except on L3 devices (tun, ipip, wireguard...).
  const packet = decodePacket(rec.data, rec.flags & FLAG_L3 ? "ip" : "ethernet", sink);
  const flow = recordFlow(rec, ctx, Verdict.FORWARDED);
  flow.eventType = eventType(MESSAGE_TYPE.TRACE, rec.obsPoint);
  flow.traceObservationPoint = observationPoint(rec.obsPoint);
  flow.trafficDirection = trafficDirection(rec.obsPoint);
  setTraceReason(flow, rec.traceReason);
  fillPacket(flow, packet, rec, ctx);
  return flow;
}

/** What every kernel record carries that its flow is built from. */
export interface RecordHeader {
  tsBootNs: bigint;
  ifindex: number;
  netnsCookie: bigint;
}

/** A new L3_L4 flow with `verdict`, the record's time, a uuid and the node name. */
export function recordFlow(rec: RecordHeader, ctx: DecodeContext, verdict: Verdict): Flow {
  const flow = newFlow();
  flow.time = bootTimeToTimestamp(rec.tsBootNs, ctx.bootToRealtimeNs);
  flow.uuid = ctx.uuid ? ctx.uuid() : crypto.randomUUID();
  flow.verdict = verdict;
  flow.Type = FlowType.L3_L4;
  flow.nodeName = ctx.nodeName;
  return flow;
}

/** flow.event_type {type, sub_type}. */
export function eventType(type: number, subType: number): CiliumEventType {
  const et = newEventType();
  et.type = type;
  et.subType = subType;
  return et;
}

/**
 * What a flow takes from its packet and the device it was seen on: summary, layers,
 * source and destination endpoints, and the interface (when the record names one).
 */
export function fillPacket(
  flow: Flow,
  packet: DecodedPacket,
  rec: RecordHeader,
  ctx: DecodeContext,
): void {
  flow.Summary = packetSummary(packet);
  fillLayers(flow, packet);
  flow.source = resolveEndpoint(ctx, packet.ip?.source);
  flow.destination = resolveEndpoint(ctx, packet.ip?.destination);
  if (rec.ifindex !== 0) {
    const iface = newInterface();
    iface.index = rec.ifindex;
    iface.name = ctx.ifName?.(rec.ifindex, rec.netnsCookie) ?? "";
    flow.interface = iface;
  }
}

/** flow.trace_reason, is_reply and reply for a record's connection-table reason. */
function setTraceReason(flow: Flow, reason: number): void {
  if (reason > TRACE_REASON.REOPENED) return; // UNKNOWN (not tracked) or newer than this code
  flow.traceReason = reason + 1;
  flow.isReply = reason === TRACE_REASON.REPLY;
  flow.reply = flow.isReply;
}

/** Realtime Timestamp for a CLOCK_BOOTTIME stamp. */
export function bootTimeToTimestamp(tsBootNs: bigint, bootToRealtimeNs: bigint): Timestamp {
  const ns = tsBootNs + bootToRealtimeNs;
  const ts = newTimestamp();
  ts.seconds = ns / 1_000_000_000n;
  ts.nanos = Number(ns % 1_000_000_000n);
  return ts;
}

/** Sets flow.ethernet, flow.IP and flow.l4 from a decoded packet. */
export function fillLayers(flow: Flow, packet: DecodedPacket): void {
  if (packet.ethernet) {
    const eth = newEthernet();
    eth.source = packet.ethernet.source;
    eth.destination = packet.ethernet.destination;
    flow.ethernet = eth;
  }
  if (packet.ip) {
    const ip = newIP();
    ip.source = packet.ip.source;
    ip.destination = packet.ip.destination;
    ip.ipVersion = packet.ip.version === 4 ? IPVersion.IPv4 : IPVersion.IPv6;
    flow.IP = ip;
  }
  if (packet.l4) flow.l4 = toLayer4(packet.l4);
}

/** flow.Layer4 for a decoded transport header. */
export function toLayer4(l4: L4Header): Layer4 {
  const layer = newLayer4();
  switch (l4.kind) {
    case "tcp": {
      const value = newTCP();
      value.sourcePort = l4.sourcePort;
      value.destinationPort = l4.destinationPort;
      const flags = newTCPFlags();
      flags.FIN = l4.flags.FIN;
      flags.SYN = l4.flags.SYN;
      flags.RST = l4.flags.RST;
      flags.PSH = l4.flags.PSH;
      flags.ACK = l4.flags.ACK;
      flags.URG = l4.flags.URG;
      flags.ECE = l4.flags.ECE;
      flags.CWR = l4.flags.CWR;
      flags.NS = l4.flags.NS;
      value.flags = flags;
      layer.protocol = { case: "TCP", value };
      break;
    }
    case "udp": {
      const value = newUDP();
      value.sourcePort = l4.sourcePort;
      value.destinationPort = l4.destinationPort;
      layer.protocol = { case: "UDP", value };
      break;
    }
    case "sctp": {
      const value = newSCTP();
      value.sourcePort = l4.sourcePort;
      value.destinationPort = l4.destinationPort;
      layer.protocol = { case: "SCTP", value };
      break;
    }
    case "icmpv4": {
      const value = newICMPv4();
      value.type = l4.type;
      value.code = l4.code;
      layer.protocol = { case: "ICMPv4", value };
      break;
    }
    case "icmpv6": {
      const value = newICMPv6();
      value.type = l4.type;
      value.code = l4.code;
      layer.protocol = { case: "ICMPv6", value };
      break;
    }
  }
  return layer;
}

/**
 * flow.Endpoint messages already built, per EndpointInfo object: a lookup that
 * returns the same object for a run of flows (the enricher does, per frame)
 * pays for the label sort once.
 */
const endpointMessages = new WeakMap<EndpointInfo, Endpoint>();

/**
 * flow.Endpoint for an address. Like Hubble, an endpoint message is always
 * present; it is empty when the address is unknown.
 */
export function resolveEndpoint(ctx: DecodeContext, ip: string | undefined): Endpoint {
  const info = ip !== undefined ? ctx.endpoint?.(ip) : undefined;
  if (!info) return newEndpoint();
  let ep = endpointMessages.get(info);
  if (ep === undefined) {
    ep = newEndpoint();
    ep.ID = info.id ?? 0;
    ep.identity = info.identity ?? 0;
    ep.namespace = info.namespace;
    ep.podName = info.podName;
    ep.labels = [...info.labels].sort();
    endpointMessages.set(info, ep);
  }
  return ep;
}
