/**
 * `periscope monitor` output: one line per event in the style of `cilium monitor`,
 * or one JSON object per line, and the `-v` hex dump of captured bytes.
 */
import {
  type DecodedPacket,
  icmpV4TypeCodeText,
  icmpV6TypeCodeText,
  tcpFlagsText,
} from "@periscope/flow";
import type { EndpointInfo } from "@periscope/model";
import { DropReasonSchema } from "@periscope/proto";
import { DROP_SOURCE, OBS_FROM_NETWORK, OBS_TO_NETWORK } from "@periscope/wire";
import type { MonitorRecord } from "./monitor-records.ts";

/** Lookups that turn numbers into names; each may know nothing. */
export interface MonitorNames {
  /** Device name by node, netns cookie and ifindex (periscope-interfaces). */
  ifName(node: string, netnsCookie: bigint, ifindex: number): string | undefined;
  /** Endpoint owning an IP (periscope-endpoints). */
  endpoint(ip: string): EndpointInfo | undefined;
  /** Debug type name (flow.DebugEventType). */
  debugType(type: number): string;
  /** Name of a kernel drop reason on `node` (periscope-kernel), e.g. `NETFILTER_DROP`. */
  kernelDropReason?(node: string, reason: number): string | undefined;
}

/** Trace reasons by PSCOPE_TRACE_REASON_* value, as cilium monitor spells them. */
const TRACE_STATES = ["new", "established", "reply", "related", "reopened", "unknown"];
const ACTIONS = ["allow", "deny", "audit"];
const MATCHES = ["none", "L3-Only", "L3-L4", "L4-Only", "all"];
const DIRECTIONS = ["", "ingress", "egress"];

/** `new`, `established`, …; `unknown` past the table. */
export function traceState(reason: number): string {
  return TRACE_STATES[reason] ?? "unknown";
}

/** `10.0.0.1:34567 -> 10.0.0.2:80 tcp SYN` (cilium monitor's connection summary). */
export function connectionSummary(p: DecodedPacket | undefined): string {
  if (p === undefined) return "undecodable packet";
  const ip = p.ip;
  if (ip === undefined) {
    if (p.arp) {
      const a = p.arp;
      return a.operation === 1
        ? `ARP request who-has ${a.targetIp} tell ${a.senderIp}`
        : `ARP reply ${a.senderIp} is-at ${a.senderMac}`;
    }
    return p.ethernet
      ? `${p.ethernet.source} -> ${p.ethernet.destination} ethertype 0x${p.ethernet.etherType.toString(16).padStart(4, "0")}`
      : "";
  }
  const host = (a: string) => (ip.version === 6 ? `[${a}]` : a);
  const l4 = p.l4;
  switch (l4?.kind) {
    case "tcp":
      return `${host(ip.source)}:${l4.sourcePort} -> ${host(ip.destination)}:${l4.destinationPort} tcp ${tcpFlagsText(l4.flags)}`;
    case "udp":
    case "sctp":
      return `${host(ip.source)}:${l4.sourcePort} -> ${host(ip.destination)}:${l4.destinationPort} ${l4.kind}`;
    case "icmpv4":
      return `${ip.source} -> ${ip.destination} icmp ${icmpV4TypeCodeText(l4.type, l4.code)}`;
    case "icmpv6":
      return `${ip.source} -> ${ip.destination} icmpv6 ${icmpV6TypeCodeText(l4.type, l4.code)}`;
    case undefined:
      return `${ip.source} -> ${ip.destination} proto ${ip.protocol}`;
  }
}

function hash(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

function device(node: string, rec: { ifindex: number; netnsCookie: bigint }, names: MonitorNames) {
  const name = names.ifName(node, rec.netnsCookie, rec.ifindex);
  return name ? `${name} (ifindex ${rec.ifindex})` : `ifindex ${rec.ifindex}`;
}

function endpointName(ip: string | undefined, names: MonitorNames): string | undefined {
  if (ip === undefined) return undefined;
  const ep = names.endpoint(ip);
  return ep ? `${ep.namespace}/${ep.podName}` : undefined;
}

/** Drop reason text: Cilium's reason names for policy drops, the kernel's name (else number) otherwise. */
export function dropReasonText(source: number, reason: number, kernelName?: string): string {
  if (source === DROP_SOURCE.POLICY) {
    if (reason === 133) return "Policy denied";
    return DropReasonSchema.values.find((v) => v.number === reason)?.name ?? `reason ${reason}`;
  }
  return kernelName ?? `kernel reason ${reason}`;
}

/** One text line for a kernel record of `node` (without the hex dump). */
export function formatRecordLine(node: string, rec: MonitorRecord, names: MonitorNames): string {
  switch (rec.kind) {
    case "trace": {
      const arrow = rec.obsPoint === OBS_FROM_NETWORK ? "<-" : "->";
      const where =
        rec.obsPoint === OBS_TO_NETWORK || rec.obsPoint === OBS_FROM_NETWORK
          ? "network"
          : `point ${rec.obsPoint}`;
      return `${arrow} ${where} ${device(node, rec, names)} flow ${hash(rec.flowHash)} state ${traceState(rec.traceReason)} orig-len ${rec.origLen}: ${connectionSummary(rec.packet)}`;
    }
    case "drop": {
      const dst = endpointName(rec.packet?.ip?.destination, names) ?? "0";
      const loc = rec.location !== 0n ? `, location 0x${rec.location.toString(16)}` : "";
      return `xx drop (${dropReasonText(rec.source, rec.reason, names.kernelDropReason?.(node, rec.reason))}) flow ${hash(rec.flowHash)} to endpoint ${dst}, ${device(node, rec, names)}${loc}: ${connectionSummary(rec.packet)}`;
    }
    case "policy-verdict": {
      const ip = rec.packet?.ip;
      const ingress = rec.direction === 1;
      const local = names.endpoint((ingress ? ip?.destination : ip?.source) ?? "");
      const remote = names.endpoint((ingress ? ip?.source : ip?.destination) ?? "");
      return `Policy verdict log: flow ${hash(rec.flowHash)}, local EP ID ${local?.id ?? 0}, remote ID ${remote?.identity ?? 0}, proto ${ip?.protocol ?? 0}, ${DIRECTIONS[rec.direction] || "unknown"}, action ${ACTIONS[rec.action] ?? rec.action}, match ${MATCHES[rec.matchType] ?? rec.matchType}, rule ${rec.ruleId}, ${device(node, rec, names)}, ${connectionSummary(rec.packet)}`;
    }
    case "debug": {
      const [a1, a2, a3] = rec.args;
      return `-- debug ${names.debugType(rec.subtype)}: flow ${hash(rec.flowHash)}, ${device(node, rec, names)}, arg1=0x${a1.toString(16)} arg2=0x${a2.toString(16)} arg3=0x${a3.toString(16)}`;
    }
  }
}

/** The `-v` prefix line, like cilium monitor's `CPU 01: ...` header. */
export function verboseHeader(node: string, rec: MonitorRecord, timeIso: string): string {
  const cap = "data" in rec ? `, ${rec.origLen} bytes (${rec.data.length} captured)` : "";
  return `CPU ${String(rec.cpu).padStart(2, "0")}: ${timeIso} node ${node} ${rec.kind}${cap}`;
}

/** `hexdump -C` style lines of `bytes`: offset, 16 hex bytes, printable ASCII. */
export function hexDump(bytes: Uint8Array): string[] {
  const lines: string[] = [];
  for (let off = 0; off < bytes.length; off += 16) {
    const row = bytes.subarray(off, off + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0"));
    const left = hex.slice(0, 8).join(" ");
    const right = hex.slice(8).join(" ");
    const ascii = [...row]
      .map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "."))
      .join("");
    lines.push(
      `${off.toString(16).padStart(8, "0")}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${ascii}|`,
    );
  }
  return lines;
}

/** A record as a plain JSON object (`-j`): numbers as numbers, 64-bit values as strings. */
export function recordJson(
  node: string,
  rec: MonitorRecord,
  timeIso: string,
  names: MonitorNames,
  verbose: boolean,
): Record<string, unknown> {
  const base: Record<string, unknown> = {
    type: rec.kind,
    node,
    time: timeIso,
    cpu: rec.cpu,
    ifindex: rec.ifindex,
    flowHash: hash(rec.flowHash),
  };
  const ifname = names.ifName(node, rec.netnsCookie, rec.ifindex);
  if (ifname) base.ifname = ifname;
  if (rec.kind === "debug") {
    return {
      ...base,
      debugType: names.debugType(rec.subtype),
      arg1: rec.args[0],
      arg2: rec.args[1],
      arg3: rec.args[2],
    };
  }
  const p = rec.packet;
  const l4 = p?.l4;
  const out: Record<string, unknown> = {
    ...base,
    origLen: rec.origLen,
    capLen: rec.data.length,
    summary: connectionSummary(p),
    ...(p?.ip ? { source: p.ip.source, destination: p.ip.destination, proto: p.ip.protocol } : {}),
    ...(l4 && "sourcePort" in l4
      ? { sourcePort: l4.sourcePort, destinationPort: l4.destinationPort }
      : {}),
    ...(l4?.kind === "tcp" ? { tcpFlags: tcpFlagsText(l4.flags) } : {}),
  };
  if (rec.kind === "trace") {
    out.observationPoint = rec.obsPoint === OBS_FROM_NETWORK ? "from-network" : "to-network";
    out.state = traceState(rec.traceReason);
  } else if (rec.kind === "drop") {
    out.reason = rec.reason;
    out.reasonText = dropReasonText(
      rec.source,
      rec.reason,
      names.kernelDropReason?.(node, rec.reason),
    );
    out.dropSource = rec.source === DROP_SOURCE.POLICY ? "policy" : "kernel";
  } else {
    out.action = ACTIONS[rec.action] ?? rec.action;
    out.match = MATCHES[rec.matchType] ?? rec.matchType;
    out.direction = DIRECTIONS[rec.direction] || "unknown";
    out.ruleId = rec.ruleId;
  }
  if (verbose) out.data = Buffer.from(rec.data).toString("hex");
  return out;
}
