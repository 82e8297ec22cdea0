import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  type Endpoint,
  type Flow,
  type GetFlowsResponse,
  LostEventSource,
  Verdict,
} from "@periscope/proto";
import { flowPorts } from "../ports.ts";
import { flowTypeText } from "./flow-type.ts";

/** Separator printed after every block. */
const SEPARATOR = "------------";

function endpointText(
  ip: string | undefined,
  port: number | undefined,
  ep: Endpoint | undefined,
): string {
  const who = ep && ep.podName !== "" ? `${ep.namespace}/${ep.podName}` : (ip ?? "");
  return port ? `${who}:${port}` : who;
}

/** The flow's summary; for flows without one, what its transport header says. */
function summary(flow: Flow): string {
  if (flow.Summary !== "") return flow.Summary;
  const p = flow.l4?.protocol;
  switch (p?.case) {
    case "TCP": {
      const flags = p.value.flags;
      const set = flags
        ? Object.entries(flags)
            .filter(([k, v]) => k !== "$typeName" && v === true)
            .map(([k]) => k)
        : [];
      return `TCP Flags: ${set.join(", ")}`;
    }
    case "ICMPv4":
    case "ICMPv6":
      return `${p.case} type ${p.value.type} code ${p.value.code}`;
    case undefined:
      return "";
    default:
      return p?.case ?? "";
  }
}

/**
 * hubble observe's `-o dict`: one right-aligned `KEY: value` block per event (RFC 3339
 * timestamp, `namespace/pod:port` when the endpoint is known, else `ip:port`, the TYPE
 * column of the compact format), each followed by a dashed separator line. Lost events
 * print their source and count; other responses give "".
 */
export function formatDict(resp: GetFlowsResponse): string {
  const time = resp.time ? timestampDate(resp.time).toISOString() : "N/A";
  if (resp.responseTypes.case === "lostEvents") {
    const lost = resp.responseTypes.value;
    return [
      `  TIMESTAMP: ${time}`,
      "       TYPE: EVENTS LOST",
      `     SOURCE: ${LostEventSource[lost.source] ?? lost.source}`,
      `   NUM LOST: ${lost.numEventsLost}`,
      SEPARATOR,
    ].join("\n");
  }
  if (resp.responseTypes.case !== "flow") return "";
  const flow = resp.responseTypes.value;
  const ports = flowPorts(flow);
  return [
    `  TIMESTAMP: ${time}`,
    `     SOURCE: ${endpointText(flow.IP?.source, ports?.source, flow.source)}`,
    `DESTINATION: ${endpointText(flow.IP?.destination, ports?.destination, flow.destination)}`,
    `       TYPE: ${flowTypeText(flow)}`,
    `    VERDICT: ${Verdict[flow.verdict] ?? flow.verdict}`,
    `    SUMMARY: ${summary(flow)}`,
    `  NODE NAME: ${resp.nodeName}`,
    SEPARATOR,
  ].join("\n");
}
