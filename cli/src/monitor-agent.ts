/** Agent events (`periscope.agent.<node>`) as `periscope monitor` prints them. */
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  AgentEventType,
  type GetAgentEventsResponse,
  GetAgentEventsResponseSchema,
} from "@periscope/proto";

/** `>> Agent event AGENT_STARTED on node-a: ...`, one line per event. */
export function agentEventLine(ev: GetAgentEventsResponse): string {
  const a = ev.agentEvent;
  const type = AgentEventType[a?.type ?? AgentEventType.AGENT_EVENT_UNKNOWN] ?? String(a?.type);
  const n = a?.notification;
  let detail = "";
  switch (n?.case) {
    case "agentStart":
      detail = `started at ${n.value.time ? timestampDate(n.value.time).toISOString() : "-"}`;
      break;
    case "endpointUpdate":
      detail = `ifindex ${n.value.id}${n.value.labels.length ? ` ${n.value.labels.join(" ")}` : ""}${n.value.error ? ` error ${n.value.error}` : ""}`;
      break;
    case "policyUpdate":
      detail = `revision ${n.value.revision}, ${n.value.ruleCount} rules${n.value.labels.length ? ` ${n.value.labels.join(" ")}` : ""}`;
      break;
    case "unknown":
      detail = `${n.value.type} ${n.value.notification}`;
      break;
    default:
      detail = n?.case ?? "";
  }
  return `>> Agent event ${type} on ${ev.nodeName}: ${detail}`;
}

/** The event as proto JSON plus `"type": "agent"`. */
export function agentEventJson(ev: GetAgentEventsResponse): JsonObject {
  return { type: "agent", ...(toJson(GetAgentEventsResponseSchema, ev) as JsonObject) };
}
