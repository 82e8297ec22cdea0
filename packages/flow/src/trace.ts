import { create } from "@bufbuild/protobuf";
import { type Timestamp, TimestampSchema } from "@bufbuild/protobuf/wkt";
import {
  CiliumEventTypeSchema,
  type Endpoint,
  EndpointSchema,
  EthernetSchema,
  type Flow,
  FlowSchema,
  FlowType,
  IPSchema,
  IPVersion,
  type Layer4,
  Layer4Schema,
  NetworkInterfaceSchema,
  Verdict,
} from "@periscope/proto";
import type { TraceRecord } from "@periscope/wire";
import { observationPoint, trafficDirection } from "./observation.ts";
import { decodePacket, type LinkType } from "./packet/decode.ts";
import type { DecodedPacket, L4Header } from "./packet/types.ts";
import { packetSummary } from "./summary.ts";

/** What the enricher knows about an IP address. */
export interface EndpointInfo {
  namespace: string;
  podName: string;
  /** Labels as "key=value" (or "source:key=value") strings. */
  labels: string[];
  nodeName?: string;
  /** Endpoint ID (flow.Endpoint.ID). */
  id?: number;
  /** Numeric security identity (flow.Endpoint.identity); 0 when unknown. */
  identity?: number;
}

/** Everything decodeTraceFlow needs besides the record. */
export interface DecodeContext {
  /** Node that observed the packet (flow.node_name). */
  nodeName: string;
  /** CLOCK_REALTIME - CLOCK_BOOTTIME in ns: added to the record's boot-time stamp. */
  bootToRealtimeNs: bigint;
  /** Endpoint owning an IP, if known. */
  endpoint?(ip: string): EndpointInfo | undefined;
  /** Interface name for an ifindex on this node, if known. */
  ifName?(ifindex: number): string | undefined;
  /** Flow UUID generator; random v4 UUIDs when absent. */
  uuid?(): string;
  /** First header in the capture; "ethernet" when absent. */
  linkType?: LinkType;
}

/** Cilium monitor message type of trace events (flow.event_type.type). */
export const MESSAGE_TYPE_TRACE = 4;

/**
 * Turn a kernel trace record into the flow.Flow Hubble would produce for a
 * trace event: FORWARDED, L3_L4, event_type {4, obsPoint}, addresses, ports,
 * flags, endpoints, interface, summary. `is_reply` stays unset (the record
 * carries no connection-tracking state), so `reply` is false.
 * @throws PacketDecodeError when the captured packet is malformed.
 */
export function decodeTraceFlow(rec: TraceRecord, ctx: DecodeContext): Flow {
  const packet = decodePacket(rec.data, ctx.linkType ?? "ethernet");
  const flow = create(FlowSchema, {
    time: bootTimeToTimestamp(rec.tsBootNs, ctx.bootToRealtimeNs),
    uuid: ctx.uuid ? ctx.uuid() : crypto.randomUUID(),
    verdict: Verdict.FORWARDED,
    Type: FlowType.L3_L4,
    nodeName: ctx.nodeName,
    eventType: create(CiliumEventTypeSchema, { type: MESSAGE_TYPE_TRACE, subType: rec.obsPoint }),
    traceObservationPoint: observationPoint(rec.obsPoint),
    trafficDirection: trafficDirection(rec.obsPoint),
    Summary: packetSummary(packet),
  });
  fillLayers(flow, packet);
  flow.source = resolveEndpoint(ctx, packet.ip?.source);
  flow.destination = resolveEndpoint(ctx, packet.ip?.destination);
  if (rec.ifindex !== 0) {
    flow.interface = create(NetworkInterfaceSchema, {
      index: rec.ifindex,
      name: ctx.ifName?.(rec.ifindex) ?? "",
    });
  }
  return flow;
}

/** Realtime Timestamp for a CLOCK_BOOTTIME stamp. */
export function bootTimeToTimestamp(tsBootNs: bigint, bootToRealtimeNs: bigint): Timestamp {
  const ns = tsBootNs + bootToRealtimeNs;
  const seconds = ns / 1_000_000_000n;
  const nanos = Number(ns % 1_000_000_000n);
  return create(TimestampSchema, { seconds, nanos });
}

function fillLayers(flow: Flow, packet: DecodedPacket): void {
  if (packet.ethernet) {
    flow.ethernet = create(EthernetSchema, {
      source: packet.ethernet.source,
      destination: packet.ethernet.destination,
    });
  }
  if (packet.ip) {
    flow.IP = create(IPSchema, {
      source: packet.ip.source,
      destination: packet.ip.destination,
      ipVersion: packet.ip.version === 4 ? IPVersion.IPv4 : IPVersion.IPv6,
      encrypted: false,
    });
  }
  if (packet.l4) flow.l4 = toLayer4(packet.l4);
}

/** flow.Layer4 for a decoded transport header. */
export function toLayer4(l4: L4Header): Layer4 {
  switch (l4.kind) {
    case "tcp":
      return create(Layer4Schema, {
        protocol: {
          case: "TCP",
          value: {
            sourcePort: l4.sourcePort,
            destinationPort: l4.destinationPort,
            flags: { ...l4.flags },
          },
        },
      });
    case "udp":
      return create(Layer4Schema, {
        protocol: {
          case: "UDP",
          value: { sourcePort: l4.sourcePort, destinationPort: l4.destinationPort },
        },
      });
    case "sctp":
      return create(Layer4Schema, {
        protocol: {
          case: "SCTP",
          value: { sourcePort: l4.sourcePort, destinationPort: l4.destinationPort },
        },
      });
    case "icmpv4":
      return create(Layer4Schema, {
        protocol: { case: "ICMPv4", value: { type: l4.type, code: l4.code } },
      });
    case "icmpv6":
      return create(Layer4Schema, {
        protocol: { case: "ICMPv6", value: { type: l4.type, code: l4.code } },
      });
  }
}

/**
 * flow.Endpoint for an address. Like Hubble, an endpoint message is always
 * present; it is empty when the address is unknown.
 */
function resolveEndpoint(ctx: DecodeContext, ip: string | undefined): Endpoint {
  const info = ip !== undefined ? ctx.endpoint?.(ip) : undefined;
  if (!info) return create(EndpointSchema, {});
  return create(EndpointSchema, {
    ID: info.id ?? 0,
    identity: info.identity ?? 0,
    namespace: info.namespace,
    podName: info.podName,
    labels: [...info.labels].sort(),
  });
}
