import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { MESSAGE_TYPE } from "@periscope/model";
import {
  AuthType,
  type Flow,
  type GetFlowsResponse,
  type LostEvent,
  LostEventSource,
  NodeState,
  type NodeStatusEvent,
  type Policy,
  TrafficDirection,
  Verdict,
} from "@periscope/proto";
import { processText } from "../filters/process.ts";
import { flowPorts } from "../ports.ts";
import { flowTypeText, verdictText } from "./flow-type.ts";
import { formatIdentity } from "./identity.ts";
import { escapeTerminal, paint } from "./style.ts";
import { formatTimestamp, type TimeLayout } from "./time.ts";

/** Options of the text formats (compact, dict, table), named after hubble observe's flags. */
export interface CompactOptions {
  /** Print the node name (hubble --print-node-name). */
  nodeName?: boolean;
  /** "compact" (default) is hubble's StampMilli; or any TimeLayout (hubble --time-format). */
  timestamps?: "compact" | TimeLayout;
  /** Show "namespace/pod" instead of IPs when known (hubble --ip-translation, default true). */
  ipTranslation?: boolean;
  /** ANSI colors for hosts, ports, identities and verdicts (hubble --color always). */
  color?: boolean;
  /** Policy names after ALLOWED/DENIED verdicts (hubble --print-policy-names). */
  policyNames?: boolean;
}

/** The layout `opts` asks for. */
export function layoutOf(opts: CompactOptions): TimeLayout {
  return opts.timestamps === undefined || opts.timestamps === "compact"
    ? "StampMilli"
    : opts.timestamps;
}

/**
 * One line (without a trailing newline) in hubble observe's compact format:
 * `Nov 22 02:50:01.123: demo/frontend:34567 (ID:1001) -> demo/backend:80 (ID:1002) to-network FORWARDED (TCP Flags: SYN)`.
 * The arrow is `->`, `<-` for replies (source and destination swapped) and
 * `<>` when is_reply is unknown. Lost events print as
 * `<time> EVENTS LOST: <source> CPU(<n>) <count> (first: <time>, last: <time>)`, node
 * status changes as hubble's stderr messages; an empty response gives "".
 * Escape characters and carriage returns in the text are made visible.
 */
export function formatCompact(resp: GetFlowsResponse, opts: CompactOptions = {}): string {
  const layout = layoutOf(opts);
  const r = resp.responseTypes;
  switch (r.case) {
    case "flow":
      return escapeTerminal(formatFlowCompact(r.value, layout, opts), opts.color);
    case "lostEvents":
      return escapeTerminal(
        `${formatTimestamp(resp.time, layout)} EVENTS LOST: ${lostSource(r.value)} ${lostSummary(r.value, layout, " ")}`,
        opts.color,
      );
    case "nodeStatus":
      return escapeTerminal(formatNodeStatus(r.value, resp.time, resp.nodeName, layout));
    default:
      return "";
  }
}

/** A lost event's source name, as hubble prints the enum. */
export function lostSource(lost: LostEvent): string {
  return LostEventSource[lost.source] ?? String(lost.source);
}

/**
 * `CPU(<n>)<sep><count>` plus ` (first: …, last: …)` when both are set — hubble's lost
 * event summary (`sep` is " " in compact, " - " in dict and table).
 */
export function lostSummary(lost: LostEvent, layout: TimeLayout, sep: string): string {
  let out = `CPU(${lost.cpu ?? 0})${sep}${lost.numEventsLost}`;
  if (lost.first && lost.last) {
    out += ` (first: ${formatTimestamp(lost.first, layout)}, last: ${formatTimestamp(lost.last, layout)})`;
  }
  return out;
}

function formatFlowCompact(flow: Flow, layout: TimeLayout, opts: CompactOptions): string {
  let [src, dst] = flowHosts(flow, opts);
  let srcId = paint(opts.color, "magenta", formatIdentity(flow.source?.identity ?? 0));
  let dstId = paint(opts.color, "magenta", formatIdentity(flow.destination?.identity ?? 0));
  let arrow = "->";
  if (flow.isReply === undefined) arrow = "<>";
  else if (flow.isReply) {
    [src, dst] = [dst, src];
    [srcId, dstId] = [dstId, srcId];
    arrow = "<-";
  }
  const node = opts.nodeName ? ` [${flow.nodeName}]` : "";
  const proc = flow.extensions === undefined ? "" : processText(flow);
  const owner = proc === "" ? "" : ` (${escapeTerminal(proc)})`;
  return `${formatTimestamp(flow.time, layout)}${node}: ${src} ${srcId} ${arrow} ${dst} ${dstId} ${flowTypeText(flow)} ${flowVerdict(flow, opts)} (${flowSummary(flow, opts)})${owner}`;
}

function policyNames(policies: readonly Policy[]): string {
  const named = policies.filter((p) => p.kind !== "" && p.name !== "");
  return named.length === 0 ? "" : ` BY ${named.map((p) => `${p.name} (${p.kind})`).join(", ")}`;
}

/** hubble's VERDICT column, colored, with policy names when asked for. */
export function flowVerdict(flow: Flow, opts: CompactOptions): string {
  let text = verdictText(flow);
  const policy = flow.eventType?.type === MESSAGE_TYPE.POLICY_VERDICT;
  const egress = flow.trafficDirection === TrafficDirection.EGRESS;
  const ingress = flow.trafficDirection === TrafficDirection.INGRESS;
  switch (flow.verdict) {
    case Verdict.FORWARDED:
    case Verdict.REDIRECTED:
      if (policy && opts.policyNames && (egress || ingress))
        text += policyNames(egress ? flow.egressAllowedBy : flow.ingressAllowedBy);
      return paint(opts.color, "green", text);
    case Verdict.DROPPED:
    case Verdict.ERROR:
      if (policy && opts.policyNames && (egress || ingress))
        text += policyNames(egress ? flow.egressDeniedBy : flow.ingressDeniedBy);
      return paint(opts.color, "red", text);
    case Verdict.AUDIT:
    case Verdict.TRACED:
    case Verdict.TRANSLATED:
      return paint(opts.color, "yellow", text);
    default:
      return text;
  }
}

/** hubble's SUMMARY: optional IP trace id, the flow summary, and `; Auth: <type>` unless disabled. */
export function flowSummary(flow: Flow, opts: CompactOptions = {}): string {
  let out = "";
  if (flow.ipTraceId && flow.ipTraceId.traceId > 0n)
    out += `IP Trace ID: ${flow.ipTraceId.traceId}; `;
  out += flow.Summary;
  if (flow.authType !== AuthType.DISABLED) {
    const name = AuthType[flow.authType] ?? String(flow.authType);
    out += `; Auth: ${paint(opts.color, flow.authType === AuthType.TEST_ALWAYS_FAIL ? "red" : "green", name)}`;
  }
  return out;
}

/**
 * Source and destination as hubble prints them: `namespace/pod`, `namespace/service`, DNS
 * names or the IP (translation off: always the IP), `:port` when known (IPv6 in brackets);
 * MAC addresses for non-IP flows.
 */
export function flowHosts(flow: Flow, opts: CompactOptions = {}): [string, string] {
  const translate = opts.ipTranslation ?? true;
  if (!flow.IP) {
    if (flow.ethernet)
      return [
        paint(opts.color, "cyan", flow.ethernet.source),
        paint(opts.color, "cyan", flow.ethernet.destination),
      ];
    return ["", ""];
  }
  const ports = flowPorts(flow);
  const src = hostname(flow.IP.source, ports?.source, translate, opts.color, {
    ns: flow.sourceService ? flow.sourceService.namespace : (flow.source?.namespace ?? ""),
    pod: flow.source?.podName ?? "",
    svc: flow.sourceService?.name ?? "",
    names: flow.sourceNames,
  });
  const dst = hostname(flow.IP.destination, ports?.destination, translate, opts.color, {
    ns: flow.destinationService
      ? flow.destinationService.namespace
      : (flow.destination?.namespace ?? ""),
    pod: flow.destination?.podName ?? "",
    svc: flow.destinationService?.name ?? "",
    names: flow.destinationNames,
  });
  return [paint(opts.color, "cyan", src), paint(opts.color, "cyan", dst)];
}

/** Go's path.Join for two elements that contain no slashes of their own. */
function joinNs(ns: string, name: string): string {
  return ns === "" ? name : `${ns}/${name}`;
}

function hostname(
  ip: string,
  port: number | undefined,
  translate: boolean,
  color: boolean | undefined,
  who: { ns: string; pod: string; svc: string; names: readonly string[] },
): string {
  let host = ip;
  if (translate) {
    if (who.pod !== "") host = joinNs(who.ns, who.pod);
    else if (who.svc !== "") host = joinNs(who.ns, who.svc);
    else if (who.names.length > 0) host = who.names.join(",");
  }
  if (port === undefined || port === 0) return host;
  const p = paint(color, "yellow", String(port));
  return host.includes(":") ? `[${host}]:${p}` : `${host}:${p}`;
}

const NODE_NAMES_CUT_OFF = 50;

/** Join names, leaving out the tail (" (and N more)") once past `target` characters. */
export function joinWithCutOff(names: readonly string[], sep: string, target: number): string {
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

/** Node names of a status event as hubble lists them (cut off past 50 characters). */
export function nodeStatusNames(s: NodeStatusEvent): string {
  return joinWithCutOff(s.nodeNames, ", ", NODE_NAMES_CUT_OFF);
}

/**
 * True for the node status changes hubble prints without --debug (errors and
 * unavailable nodes); connected/gone notices are informational.
 */
export function isNodeStatusWarning(s: NodeStatusEvent): boolean {
  return s.stateChange === NodeState.NODE_ERROR || s.stateChange === NodeState.NODE_UNAVAILABLE;
}

function formatNodeStatus(
  s: NodeStatusEvent,
  time: Timestamp | undefined,
  nodeName: string,
  layout: TimeLayout,
): string {
  const prefix = `${formatTimestamp(time, layout)} [${nodeName}]`;
  const n = s.nodeNames.length;
  const names = nodeStatusNames(s);
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
