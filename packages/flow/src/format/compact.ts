import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  AuthType,
  type Flow,
  type GetFlowsResponse,
  LostEventSource,
  NodeState,
  type NodeStatusEvent,
} from "@periscope/proto";
import { flowPorts } from "../ports.ts";
import { flowTypeText, verdictText } from "./flow-type.ts";
import { formatIdentity } from "./identity.ts";
import { formatTimestamp, type TimeLayout } from "./time.ts";

/** Options of the compact format, named after hubble observe's flags. */
export interface CompactOptions {
  /** Print " [node]" after the timestamp (hubble --print-node-name). */
  nodeName?: boolean;
  /** "compact" (default) is hubble's StampMilli; or any TimeLayout. */
  timestamps?: "compact" | TimeLayout;
  /** Show "namespace/pod" instead of IPs when known (hubble --ip-translation, default true). */
  ipTranslation?: boolean;
}

/**
 * One line (without a trailing newline) in hubble observe's compact format:
 * `Nov 22 02:50:01.123: demo/frontend:34567 (ID:1001) -> demo/backend:80 (ID:1002) to-network FORWARDED (TCP Flags: SYN)`.
 * The arrow is `->`, `<-` for replies (source and destination swapped) and
 * `<>` when is_reply is unknown. Lost events print as
 * `EVENTS LOST: <source> CPU(<n>) <count>`, node status changes like hubble's
 * stderr messages; an empty response gives "".
 */
export function formatCompact(resp: GetFlowsResponse, opts: CompactOptions = {}): string {
  const layout: TimeLayout =
    opts.timestamps === undefined || opts.timestamps === "compact" ? "StampMilli" : opts.timestamps;
  const r = resp.responseTypes;
  switch (r.case) {
    case "flow":
      return formatFlowCompact(r.value, layout, opts);
    case "lostEvents": {
      const source = LostEventSource[r.value.source] ?? String(r.value.source);
      return `EVENTS LOST: ${source} CPU(${r.value.cpu ?? 0}) ${r.value.numEventsLost}`;
    }
    case "nodeStatus":
      return formatNodeStatus(r.value, resp.time, resp.nodeName, layout);
    default:
      return "";
  }
}

function formatFlowCompact(flow: Flow, layout: TimeLayout, opts: CompactOptions): string {
  let [src, dst] = hostNames(flow, opts.ipTranslation ?? true);
  let srcId = formatIdentity(flow.source?.identity ?? 0);
  let dstId = formatIdentity(flow.destination?.identity ?? 0);
  let arrow = "->";
  if (flow.isReply === undefined) arrow = "<>";
  else if (flow.isReply) {
    [src, dst] = [dst, src];
    [srcId, dstId] = [dstId, srcId];
    arrow = "<-";
  }
  const node = opts.nodeName ? ` [${flow.nodeName}]` : "";
  return `${formatTimestamp(flow.time, layout)}${node}: ${src} ${srcId} ${arrow} ${dst} ${dstId} ${flowTypeText(flow)} ${verdictText(flow)} (${summaryText(flow)})`;
}

/** hubble's SUMMARY: optional IP trace id, the flow summary, and the auth type unless disabled. */
function summaryText(flow: Flow): string {
  let out = "";
  if (flow.ipTraceId && flow.ipTraceId.traceId > 0n)
    out += `IP Trace ID: ${flow.ipTraceId.traceId}; `;
  out += flow.Summary;
  if (flow.authType !== AuthType.DISABLED) {
    out += `; ${AuthType[flow.authType] ?? String(flow.authType)}`;
  }
  return out;
}

function hostNames(flow: Flow, translate: boolean): [string, string] {
  if (!flow.IP) {
    if (flow.ethernet) return [flow.ethernet.source, flow.ethernet.destination];
    return ["", ""];
  }
  const ports = flowPorts(flow);
  const src = hostname(flow.IP.source, ports?.source, translate, {
    ns: flow.sourceService ? flow.sourceService.namespace : (flow.source?.namespace ?? ""),
    pod: flow.source?.podName ?? "",
    svc: flow.sourceService?.name ?? "",
    names: flow.sourceNames,
  });
  const dst = hostname(flow.IP.destination, ports?.destination, translate, {
    ns: flow.destinationService
      ? flow.destinationService.namespace
      : (flow.destination?.namespace ?? ""),
    pod: flow.destination?.podName ?? "",
    svc: flow.destinationService?.name ?? "",
    names: flow.destinationNames,
  });
  return [src, dst];
}

/** Go's path.Join for two elements that contain no slashes of their own. */
function joinNs(ns: string, name: string): string {
  return ns === "" ? name : `${ns}/${name}`;
}

function hostname(
  ip: string,
  port: number | undefined,
  translate: boolean,
  who: { ns: string; pod: string; svc: string; names: readonly string[] },
): string {
  let host = ip;
  if (translate) {
    if (who.pod !== "") host = joinNs(who.ns, who.pod);
    else if (who.svc !== "") host = joinNs(who.ns, who.svc);
    else if (who.names.length > 0) host = who.names.join(",");
  }
  if (port === undefined || port === 0) return host;
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

const NODE_NAMES_CUT_OFF = 50;

/** Join names, leaving out the tail (" (and N more)") once past `target` characters. */
function joinWithCutOff(names: readonly string[], sep: string, target: number): string {
  let len = 0;
  let end = names.length;
  for (const [i, name] of names.entries()) {
    len += name.length + sep.length;
    if (len > target && i > 0) {
      end = i;
      break;
    }
  }
  const joined = names.slice(0, end).join(sep);
  const omitted = names.length - end;
  return omitted === 0 ? joined : `${joined} (and ${omitted} more)`;
}

function formatNodeStatus(
  s: NodeStatusEvent,
  time: Timestamp | undefined,
  nodeName: string,
  layout: TimeLayout,
): string {
  const prefix = `${formatTimestamp(time, layout)} [${nodeName}]`;
  const n = s.nodeNames.length;
  const names = joinWithCutOff(s.nodeNames, ", ", NODE_NAMES_CUT_OFF);
  switch (s.stateChange) {
    case NodeState.NODE_CONNECTED:
      return `${prefix}: Receiving flows from ${n} nodes: ${names}`;
    case NodeState.NODE_UNAVAILABLE:
      return `${prefix}: ${n} nodes are unavailable: ${names}`;
    case NodeState.NODE_GONE:
      return `${prefix}: ${n} nodes removed from cluster: ${names}`;
    case NodeState.NODE_ERROR:
      return `${prefix}: Error ${JSON.stringify(s.message)} on ${n} nodes: ${names}`;
    default:
      return `${prefix}: unknown node status event: ${NodeState[s.stateChange] ?? s.stateChange}`;
  }
}
