/**
 * Flow table cells, as Hubble UI shows them: time, source, destination, type, verdict,
 * summary. Pure, shared by the app and its tests.
 */
import type { Endpoint, Flow } from "@periscope/proto/src/gen/flow/flow_pb.ts";
import { FlowType, Verdict } from "@periscope/proto/src/gen/flow/flow_pb.ts";

/** One table row's cells. */
export interface FlowCells {
  readonly time: string;
  readonly source: string;
  readonly destination: string;
  readonly type: string;
  readonly verdict: string;
  readonly summary: string;
}

/** Milliseconds since the epoch of a flow's time (0 when unset). */
export function flowTimeMs(flow: Flow): number {
  return flow.time ? Number(flow.time.seconds) * 1000 + Math.floor(flow.time.nanos / 1e6) : 0;
}

/** `ns/pod:port`, or the address/names when there is no pod. */
function endpointCell(ep: Endpoint | undefined, ip: string, port: number, names: string[]): string {
  let who = ep?.podName ? `${ep.namespace}/${ep.podName}` : (names[0] ?? ip);
  if (!ep?.podName && ep?.labels.includes("reserved:world")) who = `${who || "world"}`;
  if (!who) who = "unknown";
  return port > 0 ? `${who}:${port}` : who;
}

/** The ports of a flow's L4 header, 0 when it has none. */
function ports(flow: Flow): [number, number] {
  const p = flow.l4?.protocol;
  if (p?.case === "TCP" || p?.case === "UDP" || p?.case === "SCTP") {
    return [p.value.sourcePort, p.value.destinationPort];
  }
  return [0, 0];
}

/** Type column: L3/L4 (with the protocol) or L7 (with the record kind). */
function typeCell(flow: Flow): string {
  if (flow.Type === FlowType.L7) {
    const c = flow.l7?.record.case;
    return c ? `L7/${c.toUpperCase()}` : "L7";
  }
  const c = flow.l4?.protocol.case;
  return c ? `L3/L4 ${c}` : "L3/L4";
}

/** The cells of one flow. */
export function flowCells(flow: Flow): FlowCells {
  const [sp, dp] = ports(flow);
  const t = flowTimeMs(flow);
  return {
    time: t ? new Date(t).toISOString().replace("T", " ").slice(0, 23) : "",
    source: endpointCell(flow.source, flow.IP?.source ?? "", sp, flow.sourceNames),
    destination: endpointCell(
      flow.destination,
      flow.IP?.destination ?? "",
      dp,
      flow.destinationNames,
    ),
    type: typeCell(flow),
    verdict: Verdict[flow.verdict] ?? String(flow.verdict),
    summary: flow.Summary,
  };
}
