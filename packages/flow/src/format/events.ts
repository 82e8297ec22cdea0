import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  type AgentEvent,
  AgentEventType,
  type DebugEvent,
  DebugEventType,
  type Endpoint,
  type GetAgentEventsResponse,
  type GetDebugEventsResponse,
  type ServiceUpsertNotificationAddr,
} from "@periscope/proto";
import { escapeTerminal } from "./style.ts";
import { formatTimestamp, type TimeLayout } from "./time.ts";

/** Options of the agent and debug event formats (hubble observe agent-events/debug-events). */
export interface EventFormatOptions {
  readonly nodeName?: boolean;
  readonly timestamps?: TimeLayout;
}

const hostPort = (a: ServiceUpsertNotificationAddr): string =>
  a.ip.includes(":") ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`;

/** hubble's DETAILS text of an agent event. */
export function agentEventDetails(e: AgentEvent, layout: TimeLayout = "StampMilli"): string {
  const n = e.notification;
  switch (n.case) {
    case "unknown":
      return `type: ${n.value.type}, notification: ${n.value.notification}`;
    case "agentStart":
      return `start time: ${formatTimestamp(n.value.time, layout)}`;
    case "policyUpdate":
      return `labels: [${n.value.labels.join(",")}], revision: ${n.value.revision}, count: ${n.value.ruleCount}`;
    case "endpointRegenerate":
      return `id: ${n.value.id}, labels: [${n.value.labels.join(",")}]${n.value.error !== "" ? `, error: ${n.value.error}` : ""}`;
    case "endpointUpdate": {
      let s = `id: ${n.value.id}`;
      if (n.value.namespace !== "") s += `, namespace: ${n.value.namespace}`;
      if (n.value.podName !== "") s += `, pod name: ${n.value.podName}`;
      return s;
    }
    case "ipcacheUpdate": {
      const i = n.value;
      let s = `cidr: ${i.cidr}, identity: ${i.identity}`;
      if (i.oldIdentity !== undefined) s += `, old identity: ${i.oldIdentity}`;
      if (i.hostIp !== "") s += `, host ip: ${i.hostIp}`;
      if (i.oldHostIp !== "") s += `, old host ip: ${i.oldHostIp}`;
      return `${s}, encrypt key: ${i.encryptKey}`;
    }
    case "serviceUpsert": {
      const v = n.value;
      let s = `id: ${v.id}`;
      if (v.frontendAddress) s += `, frontend: ${hostPort(v.frontendAddress)}`;
      if (v.backendAddresses.length > 0)
        s += `, backends: [${v.backendAddresses.map(hostPort).join(",")}]`;
      if (v.type !== "") s += `, type: ${v.type}`;
      if (v.trafficPolicy !== "") s += `, traffic policy: ${v.trafficPolicy}`;
      if (v.namespace !== "") s += `, namespace: ${v.namespace}`;
      if (v.name !== "") s += `, name: ${v.name}`;
      return s;
    }
    case "serviceDelete":
      return `id: ${n.value.id}`;
    default:
      return "UNKNOWN";
  }
}

const agentType = (e: AgentEvent) => AgentEventType[e.type] ?? String(e.type);
const debugType = (e: DebugEvent) => DebugEventType[e.type] ?? String(e.type);

/** What every event response carries: its time and the node it came from. */
interface EventResponse {
  readonly time?: Timestamp;
  readonly nodeName: string;
}

/** `<time>[ [node]]: <text>`, hubble's compact event line (escaped). */
function compactLine(r: EventResponse, opts: EventFormatOptions, text: string): string {
  const node = opts.nodeName ? ` [${r.nodeName}]` : "";
  return escapeTerminal(
    `${formatTimestamp(r.time, opts.timestamps ?? "StampMilli")}${node}: ${text}`,
  );
}

/**
 * hubble's dict block of an event: TIMESTAMP, NODE when asked, then `fields` as
 * `[label, value]`, labels right-aligned to one column (escaped).
 */
function dictBlock(
  r: EventResponse,
  opts: EventFormatOptions,
  fields: readonly (readonly [string, string])[],
): string {
  const lines = [`  TIMESTAMP: ${formatTimestamp(r.time, opts.timestamps ?? "StampMilli")}`];
  if (opts.nodeName) lines.push(`       NODE: ${r.nodeName}`);
  for (const [label, value] of fields) lines.push(`${label.padStart(11)}: ${value}`);
  return escapeTerminal(lines.join("\n"));
}

/** hubble's table header of an event: TIMESTAMP, NODE when asked, then `titles`. */
function tableHeader(opts: EventFormatOptions, titles: readonly string[]): string[] {
  return ["TIMESTAMP", ...(opts.nodeName ? ["NODE"] : []), ...titles];
}

/** hubble's table cells of an event: its time, its node when asked, then `cells` (escaped). */
function tableRow(r: EventResponse, opts: EventFormatOptions, cells: readonly string[]): string[] {
  return [
    formatTimestamp(r.time, opts.timestamps ?? "StampMilli"),
    ...(opts.nodeName ? [r.nodeName] : []),
    ...cells,
  ].map((c) => escapeTerminal(c));
}

/** `<time>[ [node]]: <TYPE> (<details>)`, hubble's compact agent event line. */
export function formatAgentEventCompact(
  r: GetAgentEventsResponse,
  opts: EventFormatOptions = {},
): string {
  const e = r.agentEvent;
  if (!e) return "";
  return compactLine(
    r,
    opts,
    `${agentType(e)} (${agentEventDetails(e, opts.timestamps ?? "StampMilli")})`,
  );
}

/** hubble's dict block of an agent event (TIMESTAMP, NODE, TYPE, DETAILS). */
export function formatAgentEventDict(
  r: GetAgentEventsResponse,
  opts: EventFormatOptions = {},
): string {
  const e = r.agentEvent;
  if (!e) return "";
  return dictBlock(r, opts, [
    ["TYPE", agentType(e)],
    ["DETAILS", agentEventDetails(e, opts.timestamps ?? "StampMilli")],
  ]);
}

/** hubble's table cells of an agent event (header with `header`). */
export function agentEventRow(
  r: GetAgentEventsResponse | undefined,
  opts: EventFormatOptions = {},
): string[] {
  if (!r) return tableHeader(opts, ["TYPE", "DETAILS"]);
  const e = r.agentEvent;
  return tableRow(r, opts, [
    e ? agentType(e) : "",
    e ? agentEventDetails(e, opts.timestamps ?? "StampMilli") : "",
  ]);
}

/** `ns/pod (ID: n)`, `reserved:x (ID: n)` or `ID: n`; N/A without an endpoint. */
function endpointShort(ep: Endpoint | undefined): string {
  if (!ep) return "N/A";
  const id = `ID: ${ep.ID}`;
  if (ep.namespace !== "" && ep.podName !== "") return `${ep.namespace}/${ep.podName} (${id})`;
  if (ep.labels.length === 1 && ep.labels[0]?.startsWith("reserved:"))
    return `${ep.labels[0]} (${id})`;
  return id;
}

const hex = (v: number | undefined) => (v === undefined ? "N/A" : `0x${v.toString(16)}`);
const cpu = (v: number | undefined) => (v === undefined ? "N/A" : String(v).padStart(2, "0"));

/** `<time>[ [node]]: <from> <TYPE> MARK: 0x… CPU: 01 (<message>)`, hubble's compact debug event. */
export function formatDebugEventCompact(
  r: GetDebugEventsResponse,
  opts: EventFormatOptions = {},
): string {
  const e = r.debugEvent;
  if (!e) return "";
  return compactLine(
    r,
    opts,
    `${endpointShort(e.source)} ${debugType(e)} MARK: ${hex(e.hash)} CPU: ${cpu(e.cpu)} (${e.message})`,
  );
}

/** hubble's dict block of a debug event (TIMESTAMP, NODE, TYPE, FROM, MARK, CPU, MESSAGE). */
export function formatDebugEventDict(
  r: GetDebugEventsResponse,
  opts: EventFormatOptions = {},
): string {
  const e = r.debugEvent;
  if (!e) return "";
  return dictBlock(r, opts, [
    ["TYPE", debugType(e)],
    ["FROM", endpointShort(e.source)],
    ["MARK", hex(e.hash)],
    ["CPU", cpu(e.cpu)],
    ["MESSAGE", e.message],
  ]);
}

/** hubble's table cells of a debug event (the header without an event). */
export function debugEventRow(
  r: GetDebugEventsResponse | undefined,
  opts: EventFormatOptions = {},
): string[] {
  if (!r) return tableHeader(opts, ["FROM", "", "TYPE", "CPU/MARK", "MESSAGE"]);
  const e = r.debugEvent;
  return tableRow(r, opts, [
    endpointShort(e?.source),
    "",
    e ? debugType(e) : "",
    `${cpu(e?.cpu)} ${hex(e?.hash)}`,
    e?.message ?? "",
  ]);
}
