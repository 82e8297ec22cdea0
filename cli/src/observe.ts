import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { pause } from "@periscope/model";
import { type GetFlowsRequest, GetFlowsRequestSchema } from "@periscope/proto";
import { type FlagSpec, isSet, lastValue, parseArgs, parseUint, UsageError } from "./args.ts";
import { describeRpcError, isCanceled, observerClient } from "./client.ts";
import { buildFilters, FILTER_FLAGS, NOT_FLAG } from "./filters.ts";
import { createPrinter, type OutputFormat, parseOutputFormat } from "./output.ts";
import { ResumePoint } from "./resume.ts";
import { parseTimeFlag } from "./time.ts";

/** Hubble prints the last 20 flows when no selector is given. */
export const DEFAULT_LAST = 20n;

/** Flags every command takes. */
export const SERVER_FLAG: FlagSpec = {
  name: "server",
  kind: "string",
  value: "host:port",
  help: "Address of the observer (env PERISCOPE_SERVER, default localhost:4245)",
};

/** Selector and output flags of `observe` (filter flags live in filters.ts). */
export const SELECTOR_FLAGS: readonly FlagSpec[] = [
  { name: "last", kind: "string", value: "N", help: "Get the last N flows stored in the ring" },
  { name: "first", kind: "string", value: "N", help: "Get the first N flows stored in the ring" },
  { name: "all", kind: "bool", help: "Get all flows stored in the ring" },
  { name: "follow", short: "f", kind: "bool", help: "Follow flows output" },
  {
    name: "since",
    kind: "string",
    value: "time",
    help: "Flows since this time (RFC 3339 or a duration ago: 5m, 1h)",
  },
  {
    name: "until",
    kind: "string",
    value: "time",
    help: "Flows until this time (RFC 3339 or a duration ago)",
  },
  {
    name: "output",
    short: "o",
    kind: "string",
    value: "format",
    help: "compact (default), json, jsonpb or dict",
  },
  { name: "json", short: "j", kind: "bool", help: "Same as --output json (hubble's -j)" },
  { name: "print-node-name", kind: "bool", help: "Print the node name in compact output" },
];

/** Every flag `observe` accepts. */
export const OBSERVE_FLAGS: readonly FlagSpec[] = [
  SERVER_FLAG,
  ...SELECTOR_FLAGS,
  NOT_FLAG,
  ...FILTER_FLAGS.map((f) => f.spec),
];

/** A fully parsed `observe` invocation. */
export interface ObserveOptions {
  readonly server: string;
  readonly request: GetFlowsRequest;
  readonly output: OutputFormat;
  readonly printNodeName: boolean;
}

/**
 * Parses `observe` arguments into a GetFlowsRequest like `hubble observe`:
 * `--last N` / `--first N` / `--all`, `--follow`, `--since`/`--until`, filter flags; with
 * no selector at all it asks for the last 20 flows. Throws {@link UsageError}.
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
  const last = lastValue(args, "last");
  const first = lastValue(args, "first");
  const all = isSet(args, "all");
  const follow = isSet(args, "follow");
  const since = lastValue(args, "since");
  const until = lastValue(args, "until");
  if ([last !== undefined, first !== undefined, all].filter(Boolean).length > 1) {
    throw new UsageError("only one of --last, --first and --all may be given");
  }
  if (first !== undefined && follow)
    throw new UsageError("--first cannot be combined with --follow");

  let number = 0n;
  if (first !== undefined) number = parseUint("first", first);
  else if (last !== undefined) number = parseUint("last", last);
  else if (all) number = 0xffff_ffff_ffff_ffffn;
  else if (!follow && since === undefined && until === undefined) number = DEFAULT_LAST;

  const { whitelist, blacklist } = buildFilters(args.flags);
  const request = create(GetFlowsRequestSchema, {
    number,
    first: first !== undefined,
    follow,
    whitelist,
    blacklist,
    ...(since !== undefined ? { since: parseTimeFlag("since", since, nowMs) } : {}),
    ...(until !== undefined ? { until: parseTimeFlag("until", until, nowMs) } : {}),
  });
  return {
    server: lastValue(args, "server") ?? defaultServer,
    request,
    output: parseOutputFormat(
      lastValue(args, "output") ?? (isSet(args, "json") ? "json" : "compact"),
    ),
    printNodeName: isSet(args, "print-node-name"),
  };
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

/**
 * Streams GetFlows and prints each response. Returns the exit code: 0 when the stream
 * ended or `signal` aborted it (Ctrl-C during --follow), 1 on a server error.
 * With --follow, once the server has answered, a lost connection (or a stream the server
 * ends, e.g. on restart) is reported on `err` and the stream resumes after the last
 * printed flow, retrying with backoff until it is back or `signal` aborts.
 */
export async function runObserve(
  opts: ObserveOptions,
  out: (line: string) => void,
  err: (line: string) => void,
  signal: AbortSignal,
  reconnect: ReconnectPolicy = DEFAULT_RECONNECT,
): Promise<number> {
  const client = observerClient(opts.server);
  const print = createPrinter(opts.output, { printNodeName: opts.printNodeName });
  const follow = opts.request.follow;
  const resume = new ResumePoint();
  let request = opts.request;
  let contacted = false;
  let delay = reconnect.initialMs;
  let lost = false;
  const onContact = (): void => {
    contacted = true;
    if (lost) {
      err(`periscope: observe (via ${opts.server}): reconnected`);
      lost = false;
      delay = reconnect.initialMs;
    }
  };
  for (;;) {
    let reason: string;
    try {
      for await (const resp of client.getFlows(request, { signal, onHeader: onContact })) {
        onContact();
        if (resume.seen(resp)) continue;
        resume.note(resp);
        const text = print(resp);
        if (text !== "") out(text);
      }
      // A stream with --until ends on purpose once it is reached.
      if (!follow || signal.aborted || opts.request.until !== undefined) return 0;
      reason = "the server ended the stream";
    } catch (e) {
      if (isCanceled(e, signal)) return 0;
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
