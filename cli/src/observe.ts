import { create, fromJson } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  formatMessageJson,
  TIME_LAYOUTS,
  type TimeLayout,
  timeLayoutByName,
} from "@periscope/flow";
import { pause } from "@periscope/model";
import {
  type FlowFilter,
  FlowFilterSchema,
  FlowSchema,
  type GetFlowsRequest,
  GetFlowsRequestSchema,
} from "@periscope/proto";
import {
  type FlagSpec,
  isSet,
  lastValue,
  type ParsedArgs,
  parseArgs,
  parseUint,
  UsageError,
} from "./args.ts";
import { describeRpcError, isCanceled, observerClient } from "./client.ts";
import { decodeCompactResponse } from "./compact-decoder.ts";
import { buildFilters, FILTER_FLAGS, NOT_FLAG } from "./filters.ts";
import { readFlowsFile } from "./input-file.ts";
import {
  type ColorWhen,
  FlowPrinter,
  type OutputFormat,
  parseColor,
  parseOutputFormat,
} from "./output.ts";
import { rawGetFlows } from "./raw-flows.ts";
import { ResumePoint } from "./resume.ts";
import { parseTimeFlag } from "./time.ts";

/** Hubble prints the last 20 flows when no selector is given. */
export const DEFAULT_LAST = 20n;

/** uint64 max: `--all`. */
const ALL = 0xffff_ffff_ffff_ffffn;

/** Flags every command takes. */
export const SERVER_FLAG: FlagSpec = {
  name: "server",
  kind: "string",
  value: "host:port",
  help: "Address of the observer (env PERISCOPE_SERVER, default localhost:4245)",
};

/**
 * hubble's default field mask for compact, dict and table output, plus the fields
 * Periscope's printer also reads (names, drop reasons, policy verdict details, auth) and
 * the uuid a resumed follow stream skips duplicates by.
 */
export const DEFAULT_FIELD_MASK: readonly string[] = [
  "time",
  "verdict",
  "ethernet",
  "IP",
  "l4",
  "source.identity",
  "source.namespace",
  "source.pod_name",
  "destination.identity",
  "destination.namespace",
  "destination.pod_name",
  "Type",
  "node_name",
  "l7",
  "event_type",
  "source_service",
  "destination_service",
  "is_reply",
  "Summary",
  "ip_trace_id",
  "uuid",
  "source_names",
  "destination_names",
  "drop_reason_desc",
  "ext_drop_reason_desc",
  "auth_type",
  "policy_match_type",
  "traffic_direction",
  "debug_capture_point",
  "sock_xlate_point",
  "egress_allowed_by",
  "ingress_allowed_by",
  "egress_denied_by",
  "ingress_denied_by",
];

/** Selector flags of `observe`. */
export const SELECTOR_FLAGS: readonly FlagSpec[] = [
  { name: "last", kind: "string", value: "N", help: "Get the last N flows stored (default 20)" },
  { name: "first", kind: "string", value: "N", help: "Get the first N flows stored" },
  { name: "all", kind: "bool", help: "Get all flows stored (best used with filters)" },
  { name: "follow", short: "f", kind: "bool", help: "Follow flows output" },
  {
    name: "since",
    kind: "string",
    value: "time",
    help: "Flows since this time: a duration ago (3s, 4m, 1h43m) or 2006-01-02, 2006-01-02T15Z07:00, 2006-01-02T15:04Z07:00, RFC 3339 (any fraction), RFC 1123Z",
  },
  {
    name: "until",
    kind: "string",
    value: "time",
    help: "Flows until this time (same formats as --since; ignored with --follow)",
  },
];

/** Formatting and other flags of `observe` and its event sub-commands. */
export const FORMAT_FLAGS: readonly FlagSpec[] = [
  {
    name: "output",
    short: "o",
    kind: "string",
    value: "format",
    help: "compact (default), dict, json (alias of jsonpb), jsonpb (each GetFlowsResponse as JSON), table",
  },
  { name: "json", short: "j", kind: "bool", help: "Same as --output json" },
  {
    name: "time-format",
    kind: "string",
    value: "layout",
    help: `Time format of printed timestamps: ${TIME_LAYOUTS.join(", ")} (default StampMilli)`,
  },
  { name: "print-node-name", kind: "bool", help: "Print the node name in output" },
  { name: "print-policy-names", kind: "bool", help: "Print policy names in output" },
  {
    name: "color",
    kind: "string",
    value: "when",
    help: "Colorize compact and dict output: auto (default, on a terminal), always, never",
  },
  { name: "numeric", kind: "bool", help: "Display all information in numeric form (no names)" },
  {
    name: "ip-translation",
    kind: "bool",
    help: "Translate IP addresses to pod, service or DNS names (default true; =false to disable)",
  },
  { name: "silent-errors", short: "s", kind: "bool", help: "Silently ignore errors and warnings" },
  { name: "debug", short: "D", kind: "bool", help: "Also print informational node status changes" },
];

/** Flags of `observe` that are neither filters nor formatting. */
export const OTHER_FLAGS: readonly FlagSpec[] = [
  {
    name: "allowlist",
    kind: "string",
    value: "json",
    help: "Allowlist as JSON encoded FlowFilters (repeatable)",
  },
  {
    name: "denylist",
    kind: "string",
    value: "json",
    help: "Denylist as JSON encoded FlowFilters (repeatable)",
  },
  {
    name: "print-raw-filters",
    kind: "bool",
    help: "Print allowlist/denylist filters and exit without sending the request",
  },
  {
    name: "input-file",
    kind: "string",
    value: "file",
    help: "Read GetFlowsResponse JSON lines (-o jsonpb output) from this file instead of the server; - for stdin",
  },
  {
    name: "field-mask",
    kind: "string",
    value: "paths",
    help: "Comma-separated flow fields to request (json/jsonpb output only)",
  },
  {
    name: "use-default-field-masks",
    kind: "bool",
    help: "Request only the printed fields for compact, dict and table output (default false: the observer sends stored flows as they are faster than it masks them)",
  },
];

/** Every flag `observe` accepts. */
export const OBSERVE_FLAGS: readonly FlagSpec[] = [
  SERVER_FLAG,
  ...SELECTOR_FLAGS,
  ...FORMAT_FLAGS,
  ...OTHER_FLAGS,
  NOT_FLAG,
  ...FILTER_FLAGS.map((f) => f.spec),
];

/** A fully parsed `observe` invocation. */
export interface ObserveOptions {
  readonly server: string;
  readonly request: GetFlowsRequest;
  readonly output: OutputFormat;
  readonly printNodeName: boolean;
  readonly timeFormat: TimeLayout;
  readonly color: ColorWhen;
  readonly ipTranslation: boolean;
  readonly policyNames: boolean;
  readonly silentErrors: boolean;
  readonly debug: boolean;
  /** Print the filters as YAML and exit. */
  readonly printRawFilters: boolean;
  /** Read responses from this file ("-" = stdin) instead of the server. */
  readonly inputFile?: string;
}

/** Every value of a repeatable flag, in order. */
function allValues(args: ParsedArgs, name: string): string[] {
  return args.flags.filter((f) => f.name === name).map((f) => f.value);
}

/** A bool flag that defaults to true (`--x=false` turns it off). */
function boolDefaultTrue(args: ParsedArgs, name: string): boolean {
  return lastValue(args, name) !== "false";
}

/** JSON FlowFilters from `--allowlist`/`--denylist` values (one or more objects each). */
export function parseRawFilters(flag: string, values: readonly string[]): FlowFilter[] {
  const out: FlowFilter[] = [];
  for (const v of values) {
    let docs: unknown[];
    try {
      const trimmed = v.trim();
      docs = trimmed.startsWith("[")
        ? (JSON.parse(trimmed) as unknown[])
        : splitJsonObjects(trimmed);
      for (const d of docs) out.push(fromJson(FlowFilterSchema, d as never));
    } catch (e) {
      throw new UsageError(
        `invalid --${flag} flag: failed to decode '${v}': ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }
  return out;
}

/** Consecutive JSON values in one string, as Go's json.Decoder reads them. */
function splitJsonObjects(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{") {
      if (depth === 0) start = i;
      depth++;
    } else if (c === "}") {
      depth--;
      if (depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
    } else if (depth === 0 && !/\s/.test(c ?? "")) {
      throw new Error(`unexpected ${JSON.stringify(c)} at offset ${i}`);
    }
  }
  if (depth !== 0) throw new Error("unexpected end of JSON input");
  return out;
}

/** YAML of the request's filters as `--print-raw-filters` prints them (hubble's form). */
export function rawFiltersYaml(request: GetFlowsRequest): string {
  const lines: string[] = [];
  const list = (key: string, filters: readonly FlowFilter[]) => {
    if (filters.length === 0) return;
    lines.push(`${key}:`);
    for (const f of filters) {
      const json = formatMessageJson(FlowFilterSchema, f);
      lines.push(`    - '${json.replaceAll("'", "''")}'`);
    }
  };
  list("allowlist", request.whitelist);
  list("denylist", request.blacklist);
  return lines.length === 0 ? "{}" : lines.join("\n");
}

/**
 * Parses `observe` arguments into a GetFlowsRequest like `hubble observe`:
 * `--last N` / `--first N` / `--all` (0 means unset), `--follow`, `--since`/`--until`
 * (`--until` is not sent with `--follow`), filter flags and raw `--allowlist`/`--denylist`
 * filters, and the default field mask for text output; with no selector at all it asks
 * for the last 20 flows. Throws {@link UsageError}.
 */
export function parseObserveArgs(
  argv: readonly string[],
  defaultServer: string,
  nowMs: number = Date.now(),
): ObserveOptions {
  const args = parseArgs(argv, OBSERVE_FLAGS);
  if (args.positionals.length > 0) {
    throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  }
  const lastN = parseUint("last", lastValue(args, "last") ?? "0");
  const firstN = parseUint("first", lastValue(args, "first") ?? "0");
  const all = isSet(args, "all");
  const follow = isSet(args, "follow");
  const sinceText = lastValue(args, "since");
  const untilText = lastValue(args, "until");
  const inputFile = lastValue(args, "input-file");
  const first = firstN > 0n;
  const last = lastN > 0n;
  if (first && last) throw new UsageError("cannot set both --first and --last");
  if (first && all) throw new UsageError("cannot set both --first and --all");
  if (first && follow) throw new UsageError("cannot set both --first and --follow");
  if (last && all) throw new UsageError("cannot set both --last and --all");

  const since = sinceText !== undefined ? parseTimeFlag("since", sinceText, nowMs) : undefined;
  const until =
    untilText !== undefined && !follow ? parseTimeFlag("until", untilText, nowMs) : undefined;
  let number = lastN;
  if (since === undefined && until === undefined && !first) {
    if (all) number = ALL;
    else if (!last && !follow && inputFile === undefined) number = DEFAULT_LAST;
  }
  if (first) number = firstN;

  const output = parseOutputFormat(
    lastValue(args, "output") ?? (isSet(args, "json") ? "json" : "compact"),
  );
  if (output === "table" && follow && inputFile === undefined)
    throw new UsageError("table output format is not compatible with follow mode");
  const timeName = lastValue(args, "time-format") ?? "StampMilli";
  const timeFormat = timeLayoutByName(timeName);
  if (!timeFormat)
    throw new UsageError(
      `invalid --time-format "${timeName}": expected one of ${TIME_LAYOUTS.join(", ")}`,
    );

  const { whitelist, blacklist } = buildFilters(args.flags);
  whitelist.push(...parseRawFilters("allowlist", allValues(args, "allowlist")));
  blacklist.push(...parseRawFilters("denylist", allValues(args, "denylist")));

  const json = output === "json" || output === "jsonpb";
  let maskPaths = allValues(args, "field-mask")
    .flatMap((v) => v.split(","))
    .map((p) => p.trim())
    .filter((p) => p !== "");
  if (!json && maskPaths.length > 0)
    throw new UsageError(`${output} output format is not compatible with custom field mask`);
  if (!json && isSet(args, "use-default-field-masks")) maskPaths = [...DEFAULT_FIELD_MASK];
  for (const path of maskPaths) checkMaskPath(path);

  const request = create(GetFlowsRequestSchema, {
    number,
    first,
    follow,
    whitelist,
    blacklist,
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(maskPaths.length > 0 ? { fieldMask: create(FieldMaskSchema, { paths: maskPaths }) } : {}),
  });
  const numeric = isSet(args, "numeric");
  return {
    server: lastValue(args, "server") ?? defaultServer,
    request,
    output,
    printNodeName: isSet(args, "print-node-name"),
    timeFormat,
    color: parseColor(lastValue(args, "color") ?? "auto"),
    ipTranslation: !numeric && boolDefaultTrue(args, "ip-translation"),
    policyNames: isSet(args, "print-policy-names"),
    silentErrors: isSet(args, "silent-errors"),
    debug: isSet(args, "debug"),
    printRawFilters: isSet(args, "print-raw-filters"),
    ...(inputFile !== undefined ? { inputFile } : {}),
  };
}

/** A field mask path must name fields of flow.Flow (hubble fails to build the mask otherwise). */
function checkMaskPath(path: string): void {
  let desc = FlowSchema as typeof FlowSchema | undefined;
  for (const name of path.split(".")) {
    const field = desc?.fields.find((f) => f.name === name);
    if (!field)
      throw new UsageError(`failed to construct field mask: invalid path "${path}" for flow.Flow`);
    desc = (field.fieldKind === "message" ? field.message : undefined) as typeof desc;
  }
}

/** Delays between reconnects of a follow stream: `initialMs` doubling up to `maxMs`. */
export interface ReconnectPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** 250 ms doubling to 2 s, reset once a reconnected stream delivers. */
export const DEFAULT_RECONNECT: ReconnectPolicy = Object.freeze({ initialMs: 250, maxMs: 2000 });

/** Errors after which asking again cannot help (the request itself is wrong). */
const FINAL_CODES: ReadonlySet<Code> = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.Unimplemented,
  Code.FailedPrecondition,
  Code.OutOfRange,
]);

/** "250ms", "1s", "2.5s" */
function delayText(ms: number): string {
  return ms < 1000
    ? `${ms}ms`
    : `${Number.isInteger(ms / 1000) ? ms / 1000 : (ms / 1000).toFixed(1)}s`;
}

/** Where `observe` writes and whether stdout is a terminal (for `--color auto`). */
export interface ObserveIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly signal: AbortSignal;
  readonly isTty?: boolean;
  /** `-o json` prints bare flows (PERISCOPE_COMPAT=legacy-json-output). */
  readonly legacyJson?: boolean;
  /** Input for `--input-file -`. */
  readonly stdin?: NodeJS.ReadableStream;
  /** Give up when the server has not answered this long after the first call (--timeout). */
  readonly firstAnswerMs?: number;
}

/** The printer `opts` asks for. */
export function observePrinter(opts: ObserveOptions, io: ObserveIo): FlowPrinter {
  const color = opts.color === "always" || (opts.color === "auto" && io.isTty === true);
  const err = opts.silentErrors ? () => {} : io.err;
  return new FlowPrinter(
    opts.output,
    {
      printNodeName: opts.printNodeName,
      timeFormat: opts.timeFormat,
      color,
      ipTranslation: opts.ipTranslation,
      policyNames: opts.policyNames,
      debug: opts.debug,
      legacyJson: io.legacyJson ?? false,
    },
    io.out,
    err,
  );
}

/**
 * Streams GetFlows and prints each response. Returns the exit code: 0 when the stream
 * ended or `signal` aborted it (Ctrl-C during --follow), 1 on a server error.
 * With --follow, once the server has answered, a lost connection (or a stream the server
 * ends, e.g. on restart) is reported on `err` and the stream resumes after the last
 * printed flow, retrying with backoff until it is back or `signal` aborts.
 * `--print-raw-filters` prints the filters and returns; `--input-file` reads a file.
 */
export async function runObserve(
  opts: ObserveOptions,
  out: (line: string) => void,
  err: (line: string) => void,
  signal: AbortSignal,
  reconnect: ReconnectPolicy = DEFAULT_RECONNECT,
  extra: Partial<ObserveIo> = {},
): Promise<number> {
  if (opts.printRawFilters) {
    out(rawFiltersYaml(opts.request));
    return 0;
  }
  const io: ObserveIo = { ...extra, out, err, signal };
  const printer = observePrinter(opts, io);
  const warn = opts.silentErrors ? () => {} : err;
  if (opts.inputFile !== undefined) {
    try {
      for await (const resp of readFlowsFile(
        opts.inputFile,
        opts.request,
        (l) => warn(`periscope: observe --input-file: ${l}`),
        io.stdin,
      )) {
        if (signal.aborted) break;
        printer.write(resp);
      }
      return 0;
    } finally {
      printer.close();
    }
  }
  try {
    return await streamFlows(opts, printer, warn, signal, reconnect, io.firstAnswerMs);
  } finally {
    printer.close();
  }
}

async function streamFlows(
  opts: ObserveOptions,
  printer: FlowPrinter,
  err: (line: string) => void,
  signal: AbortSignal,
  reconnect: ReconnectPolicy,
  firstAnswerMs: number | undefined,
): Promise<number> {
  const client = observerClient(opts.server);
  // Compact output reads few fields: a raw HTTP/2 stream and the lazy decoder keep up
  // with rates the Connect client's full decode of every flow cannot
  // (PERISCOPE_OBSERVE_DECODE=full takes the Connect client, for comparison).
  const compact = opts.output === "compact" && process.env.PERISCOPE_OBSERVE_DECODE !== "full";
  // --timeout: the first call must get the server's answer (headers) in time.
  const dial = new AbortController();
  let timedOut = false;
  const timer =
    firstAnswerMs !== undefined && firstAnswerMs > 0
      ? setTimeout(() => {
          timedOut = true;
          dial.abort();
        }, firstAnswerMs)
      : undefined;
  const callSignal = AbortSignal.any([signal, dial.signal]);
  try {
    return await streamLoop();
  } finally {
    clearTimeout(timer);
  }
  async function streamLoop(): Promise<number> {
    const follow = opts.request.follow;
    const resume = new ResumePoint();
    let request = opts.request;
    let contacted = false;
    let delay = reconnect.initialMs;
    let lost = false;
    const onContact = (): void => {
      contacted = true;
      clearTimeout(timer);
      if (lost) {
        err(`periscope: observe (via ${opts.server}): reconnected`);
        lost = false;
        delay = reconnect.initialMs;
      }
    };
    for (;;) {
      let reason: string;
      try {
        const call = { signal: contacted ? signal : callSignal, onHeader: onContact };
        for await (const resp of compact
          ? rawGetFlows(opts.server, request, decodeCompactResponse, call)
          : client.getFlows(request, call)) {
          onContact();
          if (resume.seen(resp)) continue;
          resume.note(resp);
          printer.write(resp);
        }
        // A stream with --until ends on purpose once it is reached.
        if (!follow || signal.aborted || opts.request.until !== undefined) return 0;
        reason = "the server ended the stream";
      } catch (e) {
        if (isCanceled(e, signal)) return 0;
        if (timedOut && !contacted) {
          err(
            `periscope: observe (via ${opts.server}): deadline_exceeded: no answer from the server within ${delayText(firstAnswerMs ?? 0)}`,
          );
          return 1;
        }
        const code = ConnectError.from(e).code;
        if (!follow || !contacted || FINAL_CODES.has(code)) {
          err(`periscope: observe (via ${opts.server}): ${describeRpcError(e)}`);
          return 1;
        }
        reason = describeRpcError(e);
      }
      err(
        `periscope: observe (via ${opts.server}): ${lost ? "still unreachable" : "connection lost"} (${reason}); reconnecting in ${delayText(delay)}`,
      );
      lost = true;
      await pause(delay, signal);
      if (signal.aborted) return 0;
      delay = Math.min(delay * 2, reconnect.maxMs);
      request = resume.request(opts.request);
    }
  }
}
