import { createClient } from "@connectrpc/connect";
import { decodePresenceHeader, PRESENCE_HEADER, type PresenceReport } from "@periscope/bus";
import { formatMessageJson } from "@periscope/flow";
import {
  Health,
  HealthCheckResponse_ServingStatus,
  type ServerStatusResponse,
  ServerStatusResponseSchema,
} from "@periscope/proto";
import { lastValue, parseArgs, UsageError } from "./args.ts";
import { describeRpcError, observerClient } from "./client.ts";
import { observerTransport } from "./connection.ts";
import { goDuration, grouped, tabAlign } from "./go-format.ts";
import { SERVER_FLAG } from "./observe.ts";

/** The service name hubble health-checks. */
export const OBSERVER_HEALTH_SERVICE = "hubble.server.Observer";

/** `status -o` values. */
export const STATUS_FORMATS = ["compact", "dict", "json", "table"] as const;
export type StatusFormat = (typeof STATUS_FORMATS)[number];

/** The "Services" lines: each service's live count, or what is missing and why. */
export function formatServices(p: PresenceReport): string[] {
  if (p.state === "ok") {
    const live = p.services.map((s) => `${s.service} ${s.live}`).join(", ");
    return [`Services: Ok${live ? ` (${live})` : ""}`];
  }
  return ["Services: Degraded", ...p.problems.map((line) => `  - ${line}`)];
}

/** hubble's flows/s text: the server's rate, else N/A. */
function flowsRate(s: ServerStatusResponse): string {
  return s.flowsRate > 0 ? s.flowsRate.toFixed(2) : "N/A";
}

/**
 * `hubble status` compact text for a ServerStatus response, plus Periscope's service
 * presence (from the response header) when the server sent it: the healthcheck line then
 * says Degraded while a service is missing or lost.
 */
export function formatStatus(
  server: string,
  s: ServerStatusResponse,
  presence?: PresenceReport,
): string {
  const health = presence?.state === "degraded" ? "Degraded" : "Ok";
  const ratio =
    s.maxFlows > 0n ? ` (${((Number(s.numFlows) / Number(s.maxFlows)) * 100).toFixed(2)}%)` : "";
  let rate = flowsRate(s);
  const uptimeS = Number(s.uptimeNs) / 1e9;
  if (rate === "N/A" && uptimeS > 0) rate = (Number(s.seenFlows) / uptimeS).toFixed(2);
  const lines = [
    `Healthcheck (via ${server}): ${health}`,
    `Current/Max Flows: ${grouped(s.numFlows)}/${grouped(s.maxFlows)}${ratio}`,
    `Flows/s: ${rate}`,
  ];
  if (s.numConnectedNodes !== undefined) {
    const total =
      s.numUnavailableNodes !== undefined ? `/${s.numConnectedNodes + s.numUnavailableNodes}` : "";
    lines.push(`Connected Nodes: ${s.numConnectedNodes}${total}`);
  }
  if (s.numUnavailableNodes) {
    lines.push(`Unavailable Nodes: ${s.numUnavailableNodes}`);
    const names = [...s.unavailableNodes].sort();
    if (s.numUnavailableNodes > names.length)
      names.push(`and ${s.numUnavailableNodes - names.length} more...`);
    for (const n of names) lines.push(`  - ${n}`);
  }
  if (presence) lines.push(...formatServices(presence));
  return lines.join("\n");
}

const na = (v: number | undefined) => (v === undefined ? "N/A" : String(v));

/** `hubble status -o dict`. */
export function formatStatusDict(s: ServerStatusResponse): string {
  return [
    `          NUM FLOWS: ${grouped(s.numFlows)}`,
    `          MAX FLOWS: ${grouped(s.maxFlows)}`,
    `         SEEN FLOWS: ${grouped(s.seenFlows)}`,
    `   FLOWS PER SECOND: ${flowsRate(s)}`,
    `             UPTIME: ${goDuration(s.uptimeNs)}`,
    `NUM CONNECTED NODES: ${na(s.numConnectedNodes)}`,
    ` NUM UNAVAIL. NODES: ${na(s.numUnavailableNodes)}`,
    `            VERSION: ${s.version}`,
  ].join("\n");
}

/** `hubble status -o table`. */
export function formatStatusTable(s: ServerStatusResponse): string {
  return tabAlign([
    [
      "NUM FLOWS",
      "MAX FLOWS",
      "SEEN FLOWS",
      "FLOWS PER SECOND",
      "UPTIME",
      "NUM CONNECTED NODES",
      "NUM UNAVAILABLE NODES",
      "VERSION",
    ],
    [
      grouped(s.numFlows),
      grouped(s.maxFlows),
      grouped(s.seenFlows),
      flowsRate(s),
      goDuration(s.uptimeNs),
      na(s.numConnectedNodes),
      na(s.numUnavailableNodes),
      s.version,
    ],
  ]);
}

/** Options of `status`. */
export interface StatusOptions {
  readonly server: string;
  readonly output: StatusFormat;
  /** Deadline of each call, ms (--request-timeout). */
  readonly timeoutMs: number;
}

/** Parses `status` flags (`--server`, `-o`). */
export function parseStatusArgs(
  argv: readonly string[],
  server: string,
  timeoutMs: number,
): StatusOptions {
  const args = parseArgs(argv, [
    SERVER_FLAG,
    {
      name: "output",
      short: "o",
      kind: "string",
      value: "format",
      help: "compact, dict, json, table",
    },
  ]);
  if (args.positionals.length > 0)
    throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  let o = lastValue(args, "output") ?? "compact";
  if (o === "tab") o = "table";
  if (o === "JSON" || o === "jsonpb") o = "json";
  const output = STATUS_FORMATS.find((f) => f === o);
  if (!output) throw new UsageError(`invalid output format: ${o}`);
  return { server: lastValue(args, "server") ?? server, output, timeoutMs };
}

/**
 * Runs `status` like hubble: a gRPC health check of `hubble.server.Observer` (not serving:
 * "Unavailable", exit 1), then ServerStatus printed in the chosen format. Returns the exit code.
 */
export async function runStatus(
  opts: StatusOptions,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  const { server } = opts;
  try {
    const health = await createClient(Health, observerTransport(server)).check(
      { service: OBSERVER_HEALTH_SERVICE },
      { timeoutMs: opts.timeoutMs },
    );
    if (health.status !== HealthCheckResponse_ServingStatus.SERVING) {
      const st = HealthCheckResponse_ServingStatus[health.status] ?? String(health.status);
      if (opts.output === "compact") out(`Healthcheck (via ${server}): Unavailable: ${st}`);
      err(`periscope: status (via ${server}): not healthy`);
      return 1;
    }
  } catch (e) {
    err(`periscope: status (via ${server}): failed getting status: ${describeRpcError(e)}`);
    return 1;
  }
  try {
    let header: string | null = null;
    const s = await observerClient(server).serverStatus(
      {},
      {
        timeoutMs: opts.timeoutMs,
        onHeader: (h) => {
          header = h.get(PRESENCE_HEADER);
        },
      },
    );
    switch (opts.output) {
      case "json":
        out(formatMessageJson(ServerStatusResponseSchema, s));
        return 0;
      case "dict":
        out(formatStatusDict(s));
        return 0;
      case "table":
        out(formatStatusTable(s));
        return 0;
    }
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
    err(`periscope: status (via ${server}): failed to get server status: ${describeRpcError(e)}`);
    return 1;
  }
}
