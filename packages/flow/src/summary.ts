import { icmpV4TypeCodeText, icmpV6TypeCodeText } from "./packet/icmp-names.ts";
import type { ArpPacket, DecodedPacket, TcpFlags } from "./packet/types.ts";

/** TCP flag names in the order Hubble lists them in summaries. */
const TCP_FLAG_ORDER: readonly (keyof TcpFlags)[] = [
  "SYN",
  "ACK",
  "RST",
  "FIN",
  "PSH",
  "URG",
  "ECE",
  "CWR",
  "NS",
];

/** "SYN, ACK" style list of the set flags, in Hubble's order. */
export function tcpFlagsText(flags: TcpFlags): string {
  return TCP_FLAG_ORDER.filter((name) => flags[name]).join(", ");
}

/**
 * Hubble's flow summary for an L3/L4 packet: the name of the innermost
 * decoded layer, with TCP flags or the ICMP type spelled out:
 * "TCP Flags: SYN, ACK", "UDP", "SCTP", "ICMPv4 EchoRequest",
 * "ICMPv6 EchoReply", "IPv4", "IPv6", "Ethernet". ARP, which Hubble does not
 * decode, reads like tcpdump: "ARP Request who-has 10.0.0.1 tell 10.0.0.2".
 */
export function packetSummary(packet: DecodedPacket): string {
  const l4 = packet.l4;
  if (l4) {
    switch (l4.kind) {
      case "tcp":
        return `TCP Flags: ${tcpFlagsText(l4.flags)}`;
      case "udp":
        return "UDP";
      case "sctp":
        return "SCTP";
      case "icmpv4":
        return `ICMPv4 ${icmpV4TypeCodeText(l4.type, l4.code)}`;
      case "icmpv6":
        return `ICMPv6 ${icmpV6TypeCodeText(l4.type, l4.code)}`;
    }
  }
  if (packet.ip) return packet.ip.version === 4 ? "IPv4" : "IPv6";
  if (packet.arp) return arpText(packet.arp);
  if (packet.ethernet) return "Ethernet";
  return "";
}

function arpText(arp: ArpPacket): string {
  if (arp.operation === 1) return `ARP Request who-has ${arp.targetIp} tell ${arp.senderIp}`;
  if (arp.operation === 2) return `ARP Reply ${arp.senderIp} is-at ${arp.senderMac}`;
  return `ARP op ${arp.operation} ${arp.senderIp} -> ${arp.targetIp}`;
}
