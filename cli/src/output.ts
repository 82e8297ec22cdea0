import { timestampDate } from "@bufbuild/protobuf/wkt";
import { flowPorts, formatCompact, formatJson } from "@periscope/flow";
import {
  type Endpoint,
  type Flow,
  type GetFlowsResponse,
  LostEventSource,
  Verdict,
} from "@periscope/proto";
import { UsageError } from "./args.ts";

/** Output formats of `periscope observe` (hubble's names). */
export const OUTPUT_FORMATS = ["compact", "json", "jsonpb", "dict"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Validates an `--output` value. Throws {@link UsageError}. */
export function parseOutputFormat(value: string): OutputFormat {
  const f = OUTPUT_FORMATS.find((o) => o === value);
  if (!f)
    throw new UsageError(
      `invalid --output "${value}": expected one of ${OUTPUT_FORMATS.join(", ")}`,
    );
  return f;
}

/** Options for {@link createPrinter}. */
export interface PrinterOptions {
  /** Prefix compact lines with the node name. */
  readonly printNodeName: boolean;
}

function endpointText(
  ip: string | undefined,
  port: number | undefined,
  ep: Endpoint | undefined,
): string {
  const who = ep && ep.podName !== "" ? `${ep.namespace}/${ep.podName}` : (ip ?? "");
  return port ? `${who}:${port}` : who;
}

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

/** Hubble's `-o dict`: one `KEY: value` block per event, separated by dashes. */
export function formatDict(resp: GetFlowsResponse): string {
  const time = resp.time ? timestampDate(resp.time).toISOString() : "N/A";
  if (resp.responseTypes.case === "lostEvents") {
    const lost = resp.responseTypes.value;
    return [
      `  TIMESTAMP: ${time}`,
      `       TYPE: EVENTS LOST`,
      `     SOURCE: ${LostEventSource[lost.source] ?? lost.source}`,
      `  NUM LOST: ${lost.numEventsLost}`,
      "------------",
    ].join("\n");
  }
  if (resp.responseTypes.case !== "flow") return "";
  const flow = resp.responseTypes.value;
  const ports = flowPorts(flow);
  return [
    `  TIMESTAMP: ${time}`,
    `     SOURCE: ${endpointText(flow.IP?.source, ports?.source, flow.source)}`,
    `DESTINATION: ${endpointText(flow.IP?.destination, ports?.destination, flow.destination)}`,
    `       TYPE: ${flow.eventType ? `type ${flow.eventType.type}` : ""}`,
    `    VERDICT: ${Verdict[flow.verdict] ?? flow.verdict}`,
    `    SUMMARY: ${summary(flow)}`,
    `  NODE NAME: ${resp.nodeName}`,
    "------------",
  ].join("\n");
}

/** A function rendering one GetFlowsResponse as the text to print (no trailing newline). */
export function createPrinter(
  format: OutputFormat,
  opts: PrinterOptions,
): (resp: GetFlowsResponse) => string {
  switch (format) {
    case "compact":
      return (resp) => formatCompact(resp, { nodeName: opts.printNodeName });
    case "json":
    case "jsonpb":
      return (resp) => formatJson(resp);
    case "dict":
      return formatDict;
  }
}
