import { decodePresenceHeader, PRESENCE_HEADER, type PresenceReport } from "@periscope/bus";
import type { GetNodesResponse, ServerStatusResponse } from "@periscope/proto";
import { NodeState } from "@periscope/proto";
import { describeRpcError, observerClient } from "./client.ts";

const thousands = new Intl.NumberFormat("en-US");

/** The "Services" lines: each service's live count, or what is missing and why. */
export function formatServices(p: PresenceReport): string[] {
  if (p.state === "ok") {
    const live = p.services.map((s) => `${s.service} ${s.live}`).join(", ");
    return [`Services: Ok${live ? ` (${live})` : ""}`];
  }
  return ["Services: Degraded", ...p.problems.map((line) => `  - ${line}`)];
}

/**
 * `hubble status` text for a ServerStatus response, plus Periscope's service presence
 * (from the response header) when the server sent it: the healthcheck line then says
 * Degraded while a service is missing or lost.
 */
export function formatStatus(
  server: string,
  s: ServerStatusResponse,
  presence?: PresenceReport,
): string {
  const pct = s.maxFlows > 0n ? (Number(s.numFlows) / Number(s.maxFlows)) * 100 : 0;
  const health = presence?.state === "degraded" ? "Degraded" : "Ok";
  const lines = [
    `Healthcheck (via ${server}): ${health}`,
    `Current/Max Flows: ${thousands.format(s.numFlows)}/${thousands.format(s.maxFlows)} (${pct.toFixed(2)}%)`,
    `Flows/s: ${s.flowsRate.toFixed(2)}`,
  ];
  if (s.numConnectedNodes !== undefined) {
    const total = s.numConnectedNodes + (s.numUnavailableNodes ?? 0);
    lines.push(`Connected Nodes: ${s.numConnectedNodes}/${total}`);
  }
  if (s.numUnavailableNodes) {
    lines.push(`Unavailable Nodes: ${s.numUnavailableNodes}`);
    for (const n of s.unavailableNodes) lines.push(`  - ${n}`);
  }
  if (presence) lines.push(...formatServices(presence));
  return lines.join("\n");
}

/** Runs `status`; returns the exit code. */
export async function runStatus(
  server: string,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  try {
    let header: string | null = null;
    const s = await observerClient(server).serverStatus(
      {},
      {
        timeoutMs: 10_000,
        onHeader: (h) => {
          header = h.get(PRESENCE_HEADER);
        },
      },
    );
    let presence: PresenceReport | undefined;
    if (header !== null) {
      try {
        presence = decodePresenceHeader(header);
      } catch (e) {
        err(`periscope: status (via ${server}): ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    out(formatStatus(server, s, presence));
    return 0;
  } catch (e) {
    err(`periscope: status (via ${server}): ${describeRpcError(e)}`);
    return 1;
  }
}

/** `5m2s`-style age from nanoseconds. */
export function formatAge(ns: bigint): string {
  let s = Number(ns / 1_000_000_000n);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

const STATE_TEXT: Readonly<Partial<Record<NodeState, string>>> = {
  [NodeState.NODE_CONNECTED]: "Connected",
  [NodeState.NODE_UNAVAILABLE]: "Unavailable",
  [NodeState.NODE_GONE]: "Gone",
  [NodeState.NODE_ERROR]: "Error",
};

/** `hubble list nodes`-style table. */
export function formatNodes(resp: GetNodesResponse): string {
  const rows = [["NAME", "STATUS", "AGE", "SEEN-FLOWS"]];
  for (const n of resp.nodes) {
    rows.push([
      n.name,
      STATE_TEXT[n.state] ?? "Unknown",
      formatAge(n.uptimeNs),
      thousands.format(n.seenFlows),
    ]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd((widths[i] ?? 0) + 3))
        .join("")
        .trimEnd(),
    )
    .join("\n");
}

/** Runs `list nodes`; returns the exit code. */
export async function runListNodes(
  server: string,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  try {
    const resp = await observerClient(server).getNodes({}, { timeoutMs: 10_000 });
    out(formatNodes(resp));
    return 0;
  } catch (e) {
    err(`periscope: list nodes (via ${server}): ${describeRpcError(e)}`);
    return 1;
  }
}

/** Runs `list namespaces`; returns the exit code. */
export async function runListNamespaces(
  server: string,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  try {
    const resp = await observerClient(server).getNamespaces({}, { timeoutMs: 10_000 });
    const rows = resp.namespaces.map((n) =>
      n.cluster ? `${n.cluster}/${n.namespace}` : n.namespace,
    );
    out(["NAMESPACE", ...rows].join("\n"));
    return 0;
  } catch (e) {
    err(`periscope: list namespaces (via ${server}): ${describeRpcError(e)}`);
    return 1;
  }
}
