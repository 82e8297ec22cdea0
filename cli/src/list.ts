import { formatMessageJson } from "@periscope/flow";
import {
  type GetNamespacesResponse,
  type GetNodesResponse,
  NamespaceSchema,
  type Node,
  NodeSchema,
  NodeState,
} from "@periscope/proto";
import { lastValue, parseArgs, UsageError } from "./args.ts";
import { describeRpcError, observerClient } from "./client.ts";
import { goDuration, tabAlign } from "./go-format.ts";
import { SERVER_FLAG } from "./observe.ts";

/** `list -o` values. */
export const LIST_FORMATS = ["json", "table", "wide"] as const;
export type ListFormat = (typeof LIST_FORMATS)[number];

/** Options of `list nodes` / `list namespaces`. */
export interface ListOptions {
  readonly server: string;
  readonly output: ListFormat;
  readonly timeoutMs: number;
}

/** Parses `list <what>` flags (`--server`, `-o json|table|wide`). */
export function parseListArgs(
  argv: readonly string[],
  server: string,
  timeoutMs: number,
): ListOptions {
  const args = parseArgs(argv, [
    SERVER_FLAG,
    { name: "output", short: "o", kind: "string", value: "format", help: "json, table, wide" },
  ]);
  if (args.positionals.length > 0)
    throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const o = lastValue(args, "output") ?? "table";
  const output = LIST_FORMATS.find((f) => f === o);
  if (!output) throw new UsageError(`unknown output format: ${o}`);
  return { server: lastValue(args, "server") ?? server, output, timeoutMs };
}

/** A JSON array like Go's json.MarshalIndent of proto messages ("null" when empty). */
function jsonArray(items: readonly string[]): string {
  if (items.length === 0) return "null";
  return JSON.stringify(
    items.map((s) => JSON.parse(s) as unknown),
    null,
    2,
  ).replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}

const STATE: Readonly<Partial<Record<NodeState, string>>> = {
  [NodeState.NODE_CONNECTED]: "Connected",
  [NodeState.NODE_UNAVAILABLE]: "Unavailable",
  [NodeState.NODE_GONE]: "Gone",
  [NodeState.NODE_ERROR]: "Error",
};

/** Nanoseconds rounded to whole seconds as Go's Duration.Round(time.Second) does. */
function roundSecondsNs(ns: bigint): bigint {
  return ((ns + 500_000_000n) / 1_000_000_000n) * 1_000_000_000n;
}

/**
 * `hubble list nodes` output: a table with NAME, STATUS, AGE, FLOWS/S (seen flows over
 * uptime) and CURRENT/MAX-FLOWS, `wide` adding VERSION, ADDRESS and TLS; `json` the
 * nodes as an indented JSON array. Nodes sorted by name.
 */
export function formatNodes(resp: GetNodesResponse, output: ListFormat = "table"): string {
  const nodes: Node[] = [...resp.nodes].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  if (output === "json") return jsonArray(nodes.map((n) => formatMessageJson(NodeSchema, n)));
  const wide = output === "wide";
  const rows: string[][] = [
    [
      "NAME",
      "STATUS",
      "AGE",
      "FLOWS/S",
      "CURRENT/MAX-FLOWS",
      ...(wide ? ["VERSION", "ADDRESS", "TLS"] : []),
    ],
  ];
  for (const n of nodes) {
    let age = "N/A";
    let rate = "N/A";
    const uptime = roundSecondsNs(n.uptimeNs);
    if (uptime > 0n) {
      age = goDuration(uptime);
      rate = (Number(n.seenFlows) / (Number(uptime) / 1e9)).toFixed(2);
    }
    const ratio =
      n.maxFlows > 0n
        ? `${n.numFlows}/${n.maxFlows} (${((Number(n.numFlows) / Number(n.maxFlows)) * 100).toFixed(2).padStart(6)}%)`
        : "N/A";
    const row = [n.name, STATE[n.state] ?? "Unknown", age, rate, ratio];
    if (wide) {
      const tls = n.tls === undefined ? "N/A" : n.tls.enabled ? "Enabled" : "Disabled";
      row.push(n.version === "" ? "N/A" : n.version, n.address, tls);
    }
    rows.push(row);
  }
  return tabAlign(rows);
}

/** `hubble list namespaces` output (`wide` adds CLUSTER, `json` an indented array). */
export function formatNamespaces(
  resp: GetNamespacesResponse,
  output: ListFormat = "table",
): string {
  if (output === "json")
    return jsonArray(resp.namespaces.map((n) => formatMessageJson(NamespaceSchema, n)));
  const wide = output === "wide";
  const rows: string[][] = [wide ? ["NAMESPACE", "CLUSTER"] : ["NAMESPACE"]];
  for (const n of resp.namespaces)
    rows.push(wide && n.cluster !== "" ? [n.namespace, n.cluster] : [n.namespace]);
  return tabAlign(rows);
}

/** Runs `list nodes` or `list namespaces`; returns the exit code. */
export async function runList(
  what: "nodes" | "namespaces",
  opts: ListOptions,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  const client = observerClient(opts.server);
  try {
    if (what === "nodes")
      out(formatNodes(await client.getNodes({}, { timeoutMs: opts.timeoutMs }), opts.output));
    else
      out(
        formatNamespaces(
          await client.getNamespaces({}, { timeoutMs: opts.timeoutMs }),
          opts.output,
        ),
      );
    return 0;
  } catch (e) {
    err(`periscope: list ${what} (via ${opts.server}): ${describeRpcError(e)}`);
    return 1;
  }
}
