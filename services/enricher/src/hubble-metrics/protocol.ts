import { MESSAGE_TYPE } from "@periscope/model";
import { type Flow, IPVersion } from "@periscope/proto";

const L4_TYPES = new Set<number>([
  MESSAGE_TYPE.DROP,
  MESSAGE_TYPE.TRACE,
  MESSAGE_TYPE.POLICY_VERDICT,
  MESSAGE_TYPE.CAPTURE,
]);

/**
 * The protocol best describing a flow, as Hubble's metrics label it: the L7 protocol
 * (`DNS`, `HTTP`, `Kafka`, else `Unknown L7`) for L7 flows, the L4 one (`TCP`, `UDP`,
 * `ICMPv4`, `ICMPv6`, `SCTP`, `VRRP`, `IGMP`, else `Unknown L4`) for packet flows,
 * `Unknown flow` for other event types.
 */
export function flowProtocol(flow: Flow): string {
  const type = flow.eventType?.type ?? 0;
  if (type === MESSAGE_TYPE.L7) {
    switch (flow.l7?.record.case) {
      case "dns":
        return "DNS";
      case "http":
        return "HTTP";
      case "kafka":
        return "Kafka";
      default:
        return "Unknown L7";
    }
  }
  if (L4_TYPES.has(type)) return flow.l4?.protocol.case ?? "Unknown L4";
  return "Unknown flow";
}

/** `IPv4`, `IPv6` or `IP_NOT_USED`: the IP version's enum name, as Hubble's `family` label. */
export function ipFamily(flow: Flow): string {
  return IPVersion[flow.IP?.ipVersion ?? IPVersion.IP_NOT_USED] ?? "IP_NOT_USED";
}
