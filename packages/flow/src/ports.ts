import type { Flow } from "@periscope/proto";

/** Source and destination port of a TCP, UDP or SCTP flow; undefined for other flows. */
export function flowPorts(flow: Flow): { source: number; destination: number } | undefined {
  const p = flow.l4?.protocol;
  switch (p?.case) {
    case "TCP":
    case "UDP":
    case "SCTP":
      return { source: p.value.sourcePort, destination: p.value.destinationPort };
    default:
      return undefined;
  }
}
