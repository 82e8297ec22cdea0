import { DropReason } from "@periscope/proto";

/**
 * Kernel drop reasons (enum skb_drop_reason names without `SKB_DROP_REASON_`) to the
 * closest documented Cilium/Hubble DropReason. Keyed by name because the numbers change
 * between kernels. Reasons with no counterpart are absent (DROP_REASON_UNKNOWN).
 */
export const KERNEL_TO_HUBBLE_REASON: Readonly<Record<string, DropReason>> = {
  NO_SOCKET: DropReason.SOCKET_LOOKUP_FAILED,
  NETFILTER_DROP: DropReason.POLICY_DENY,
  BPF_CGROUP_EGRESS: DropReason.POLICY_DENY,
  XFRM_POLICY: DropReason.POLICY_DENY,
  SECURITY_HOOK: DropReason.POLICY_DENY,
  IP_RPFILTER: DropReason.INVALID_SOURCE_IP,
  IP_INVALID_SOURCE: DropReason.INVALID_SOURCE_IP,
  IP_LOCAL_SOURCE: DropReason.INVALID_SOURCE_IP,
  MAC_INVALID_SOURCE: DropReason.INVALID_SOURCE_MAC,
  PKT_TOO_SMALL: DropReason.INVALID_PACKET_DROPPED,
  HDR_TRUNC: DropReason.INVALID_PACKET_DROPPED,
  IP_INHDR: DropReason.INVALID_PACKET_DROPPED,
  IP_CSUM: DropReason.INVALID_PACKET_DROPPED,
  TCP_CSUM: DropReason.INVALID_PACKET_DROPPED,
  UDP_CSUM: DropReason.INVALID_PACKET_DROPPED,
  ICMP_CSUM: DropReason.INVALID_PACKET_DROPPED,
  SKB_CSUM: DropReason.INVALID_PACKET_DROPPED,
  INVALID_PROTO: DropReason.INVALID_PACKET_DROPPED,
  VXLAN_INVALID_HDR: DropReason.INVALID_PACKET_DROPPED,
  VXLAN_VNI_NOT_FOUND: DropReason.INVALID_VNI,
  IP_NOPROTO: DropReason.UNKNOWN_L4_PROTOCOL,
  UNHANDLED_PROTO: DropReason.UNSUPPORTED_L3_PROTOCOL,
  IPV6DISABLED: DropReason.UNSUPPORTED_L3_PROTOCOL,
  IP_OUTNOROUTES: DropReason.FIB_LOOKUP_FAILED,
  IP_INNOROUTES: DropReason.FIB_LOOKUP_FAILED,
  IP_INADDRERRORS: DropReason.UNKNOWN_L3_TARGET_ADDRESS,
  IP_INVALID_DEST: DropReason.UNKNOWN_L3_TARGET_ADDRESS,
  IPV6_BAD_EXTHDR: DropReason.INVALID_IPV6_EXTENSION_HEADER,
  FRAG_REASM_TIMEOUT: DropReason.FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND,
  FQ_HORIZON_LIMIT: DropReason.REACHED_EDT_RATE_LIMITING_DROP_HORIZON,
  NEIGH_FAILED: DropReason.LOCAL_HOST_IS_UNREACHABLE,
};

/** Hubble's text for the DropReason values Periscope emits (Cilium's drop-reason strings). */
const HUBBLE_REASON_TEXT: Readonly<Partial<Record<DropReason, string>>> = {
  [DropReason.POLICY_DENIED]: "Policy denied",
  [DropReason.POLICY_DENY]: "Policy denied by denylist",
  [DropReason.SOCKET_LOOKUP_FAILED]: "Socket lookup failed",
  [DropReason.INVALID_SOURCE_IP]: "Invalid source ip",
  [DropReason.INVALID_SOURCE_MAC]: "Invalid source mac",
  [DropReason.INVALID_PACKET_DROPPED]: "Invalid packet",
  [DropReason.INVALID_VNI]: "Invalid VNI",
  [DropReason.UNKNOWN_L4_PROTOCOL]: "Unknown L4 protocol",
  [DropReason.UNSUPPORTED_L3_PROTOCOL]: "Unsupported L3 protocol",
  [DropReason.FIB_LOOKUP_FAILED]: "Host datapath not ready or FIB lookup failed",
  [DropReason.UNKNOWN_L3_TARGET_ADDRESS]: "Unknown L3 target address",
  [DropReason.INVALID_IPV6_EXTENSION_HEADER]: "Invalid IPv6 extension header",
  [DropReason.FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND]:
    "First logical datagram fragment not found",
  [DropReason.REACHED_EDT_RATE_LIMITING_DROP_HORIZON]: "Reached EDT rate-limiting drop horizon",
  [DropReason.LOCAL_HOST_IS_UNREACHABLE]: "Local host is unreachable",
};

/** Words kept upper-case when a kernel reason name is spelled out. */
const ACRONYMS = new Set(
  "TCP UDP IP IPV6 ICMP XDP MD5 AO OFO RFC7323 PAWS TW TSECR SKB GSO MAC VXLAN VNI ECN ARP PVLAN STP CAN CANFD CANXL PSP TC QDISC FQ CPU XFRM L2 BPF NDISC TTL CSUM OOB PFMEMALLOC IEEE RX TX".split(
    " ",
  ),
);

/**
 * A kernel drop reason name spelled out for people: `NO_SOCKET` -> `No socket`,
 * `NETFILTER_DROP` -> `Netfilter drop`, `TCP_CSUM` -> `TCP CSUM`.
 */
export function humanizeKernelReason(name: string): string {
  const words = name.split("_").filter((w) => w !== "");
  return words
    .map((w, i) => {
      if (ACRONYMS.has(w)) return w;
      const lower = w.toLowerCase();
      return i === 0 ? lower.charAt(0).toUpperCase() + lower.slice(1) : lower;
    })
    .join(" ");
}

/** Hubble's text for a DropReason ("Policy denied"), or its enum name spelled out. */
export function hubbleReasonText(reason: DropReason): string {
  const known = HUBBLE_REASON_TEXT[reason];
  if (known !== undefined) return known;
  const name = DropReason[reason];
  return name === undefined ? `Drop reason ${reason}` : humanizeKernelReason(name);
}

/** The DropReason for a kernel reason name; DROP_REASON_UNKNOWN when none fits. */
export function hubbleReasonForKernel(name: string): DropReason {
  return KERNEL_TO_HUBBLE_REASON[name] ?? DropReason.DROP_REASON_UNKNOWN;
}
