/**
 * `observe agent-events` and `observe debug-events`: GetAgentEvents / GetDebugEvents with
 * hubble's selectors (`--last`, default 20, `--all`, `--follow`, `--since`, `--until`)
 * printed in hubble's compact, dict, json/jsonpb or table format.
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import {
  agentEventRow,
  alignColumns,
  DICT_SEPARATOR,
  debugEventRow,
  type EventFormatOptions,
  formatAgentEventCompact,
  formatAgentEventDict,
  formatDebugEventCompact,
  formatDebugEventDict,
  formatMessageJson,
  TIME_LAYOUTS,
  timeLayoutByName,
} from "@periscope/flow";
import {
  AgentEventSchema,
  DebugEventSchema,
  type GetAgentEventsResponse,
  GetAgentEventsResponseSchema,
  type GetDebugEventsResponse,
  GetDebugEventsResponseSchema,
} from "@periscope/proto";
import { type FlagSpec, isSet, lastValue, parseArgs, parseUint, UsageError } from "./args.ts";
import { describeRpcError, isCanceled, observerClient } from "./client.ts";
import { SERVER_FLAG } from "./observe.ts";
import { type OutputFormat, parseOutputFormat } from "./output.ts";
import { parseTimeFlag } from "./time.ts";

/** Which event stream. */
export type EventKind = "agent-events" | "debug-events";

/** Flags of the event sub-commands. */
export const EVENT_FLAGS: readonly FlagSpec[] = [
  SERVER_FLAG,
  { name: "last", kind: "string", value: "N", help: "Get the last N events (default 20)" },
  { name: "all", kind: "bool", help: "Get all stored events" },
  { name: "follow", short: "f", kind: "bool", help: "Follow events" },
  { name: "since", kind: "string", value: "time", help: "Events since this time (like observe)" },
  { name: "until", kind: "string", value: "time", help: "Events until this time (like observe)" },
  {
    name: "output",
    short: "o",
    kind: "string",
    value: "format",
    help: "compact, dict, json, jsonpb, table",
  },
  { name: "json", short: "j", kind: "bool", help: "Same as --output json" },
  { name: "time-format", kind: "string", value: "layout", help: "Time format (see observe)" },
  { name: "print-node-name", kind: "bool", help: "Print the node name in output" },
  { name: "silent-errors", short: "s", kind: "bool", help: "Silently ignore errors" },
];

/** A parsed event sub-command. */
export interface EventOptions {
  readonly server: string;
  readonly request: {
    number: bigint;
    follow: boolean;
    since?: ReturnType<typeof parseTimeFlag>;
    until?: ReturnType<typeof parseTimeFlag>;
  };
  readonly output: OutputFormat;
  readonly format: EventFormatOptions;
  readonly silentErrors: boolean;
}

/** Parses the event sub-commands' flags like hubble. Throws {@link UsageError}. */
export function parseEventArgs(
  argv: readonly string[],
  server: string,
  nowMs: number = Date.now(),
): EventOptions {
  const args = parseArgs(argv, EVENT_FLAGS);
  if (args.positionals.length > 0)
    throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const follow = isSet(args, "follow");
  const sinceText = lastValue(args, "since");
  const untilText = lastValue(args, "until");
  const since = sinceText !== undefined ? parseTimeFlag("since", sinceText, nowMs) : undefined;
  const until =
    untilText !== undefined && !follow ? parseTimeFlag("until", untilText, nowMs) : undefined;
  let number = parseUint("last", lastValue(args, "last") ?? "0");
  if (since === undefined && until === undefined) {
    if (isSet(args, "all")) number = 0xffff_ffff_ffff_ffffn;
    else if (number === 0n) number = 20n;
  }
  const output = parseOutputFormat(
    lastValue(args, "output") ?? (isSet(args, "json") ? "json" : "compact"),
  );
  if (output === "table" && follow)
    throw new UsageError("table output format is not compatible with follow mode");
  const timeName = lastValue(args, "time-format") ?? "StampMilli";
  const timestamps = timeLayoutByName(timeName);
  if (!timestamps)
    throw new UsageError(
      `invalid --time-format "${timeName}": expected one of ${TIME_LAYOUTS.join(", ")}`,
    );
  return {
    server: lastValue(args, "server") ?? server,
    request: {
      number,
      follow,
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
    },
    output,
    format: { nodeName: isSet(args, "print-node-name"), timestamps },
    silentErrors: isSet(args, "silent-errors"),
  };
}

/** How one kind of event prints. */
interface EventPrinting<R> {
  readonly response: DescMessage;
  readonly event: DescMessage;
  readonly inner: (r: R) => MessageShape<DescMessage> | undefined;
  readonly compact: (r: R, o: EventFormatOptions) => string;
  readonly dict: (r: R, o: EventFormatOptions) => string;
  readonly row: (r: R | undefined, o: EventFormatOptions) => string[];
}

const AGENT: EventPrinting<GetAgentEventsResponse> = {
  response: GetAgentEventsResponseSchema,
  event: AgentEventSchema,
  inner: (r) => r.agentEvent,
  compact: formatAgentEventCompact,
  dict: formatAgentEventDict,
  row: agentEventRow,
};

const DEBUG: EventPrinting<GetDebugEventsResponse> = {
  response: GetDebugEventsResponseSchema,
  event: DebugEventSchema,
  inner: (r) => r.debugEvent,
  compact: formatDebugEventCompact,
  dict: formatDebugEventDict,
  row: debugEventRow,
};

/** Streams one kind of event and prints it; returns the exit code. */
export async function runEvents(
  kind: EventKind,
  opts: EventOptions,
  out: (line: string) => void,
  err: (line: string) => void,
  signal: AbortSignal,
  legacyJson = false,
): Promise<number> {
  const client = observerClient(opts.server);
  const rows: string[][] = [];
  let printed = 0;
  const print = <R>(how: EventPrinting<R>, r: R): void => {
    switch (opts.output) {
      case "compact":
        out(how.compact(r, opts.format));
        break;
      case "dict":
        if (printed > 0) out(DICT_SEPARATOR);
        out(how.dict(r, opts.format));
        break;
      case "json":
      case "jsonpb": {
        const inner = how.inner(r);
        if (legacyJson && opts.output === "json") {
          if (inner) out(formatMessageJson(how.event, inner));
        } else out(formatMessageJson(how.response, r as MessageShape<DescMessage>));
        break;
      }
      case "table":
        rows.push(how.row(r, opts.format));
        break;
    }
    printed++;
  };
  try {
    if (kind === "agent-events") {
      for await (const r of client.getAgentEvents(opts.request, { signal })) print(AGENT, r);
    } else {
      for await (const r of client.getDebugEvents(opts.request, { signal })) print(DEBUG, r);
    }
    return 0;
  } catch (e) {
    if (isCanceled(e, signal)) return 0;
    if (!opts.silentErrors)
      err(`periscope: observe ${kind} (via ${opts.server}): ${describeRpcError(e)}`);
    return 1;
  } finally {
    if (rows.length > 0) {
      const header =
        kind === "agent-events"
          ? AGENT.row(undefined, opts.format)
          : DEBUG.row(undefined, opts.format);
      out(alignColumns([header, ...rows]).join("\n"));
    }
  }
}
