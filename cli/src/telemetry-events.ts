/**
 * `periscope events`: a Telemetry/Subscribe stream (process exec/fork/exit, container
 * lifecycle, flows, drops) printed one compact line per event, or `-o json`. The flags
 * mirror `periscope.telemetry.v1.Subscription`.
 */
import { create, createRegistry, type MessageInitShape, toJsonString } from "@bufbuild/protobuf";
import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { processV1, telemetryV1 } from "@periscope/proto";
import { type FlagSpec, lastValue, parseArgs, parseUint, UsageError } from "./args.ts";
import { DEFAULT_SERVER, describeRpcError, isCanceled } from "./client.ts";
import { observerTransport } from "./connection.ts";
import { SERVER_FLAG } from "./observe.ts";
import { parseDurationMs, parseTimeFlag } from "./time.ts";

/** Messages in flows' `extensions` (drop and flow events), for their JSON form. */
const FLOW_EXTENSIONS = createRegistry(processV1.file_periscope_process_v1_process);

const { EventKind, LostReason, SubscriptionSchema, TelemetryEventSchema } = telemetryV1;
type TelemetryEvent = telemetryV1.TelemetryEvent;
type Subscription = telemetryV1.Subscription;

/** Flags of `periscope events`. */
export const TELEMETRY_EVENT_FLAGS: readonly FlagSpec[] = [
  SERVER_FLAG,
  {
    name: "output",
    short: "o",
    kind: "string",
    value: "compact|json",
    help: "Output format (default compact)",
  },
  {
    name: "type",
    short: "t",
    kind: "string",
    value: "kind",
    help: "exec, fork, exit, process (all three), container, flow or drop; repeat or comma-separate (default all)",
  },
  {
    name: "binary",
    kind: "string",
    value: "glob",
    help: "Processes whose binary matches (base name when no /)",
  },
  { name: "uid", kind: "string", value: "uid", help: "Processes of this real uid" },
  { name: "pid", kind: "string", value: "pid", help: "Process with this pid (tgid)" },
  {
    name: "container-id",
    kind: "string",
    value: "id",
    help: "Container id or a prefix of 4+ hex digits",
  },
  { name: "container-name", kind: "string", value: "glob", help: "Containers whose name matches" },
  {
    name: "container-image",
    kind: "string",
    value: "glob",
    help: "Containers whose image matches",
  },
  { name: "node", kind: "string", value: "name", help: "Events of this node (repeatable)" },
  {
    name: "throttle",
    kind: "string",
    value: "N/interval",
    help: "At most N events per interval, e.g. 100/1s; the rest reported lost",
  },
  { name: "limit", kind: "string", value: "N", help: "Stop after N events" },
  {
    name: "since",
    kind: "string",
    value: "time",
    help: "Drop events before this time (RFC 3339 or a duration ago)",
  },
  { name: "until", kind: "string", value: "time", help: "Stop at this time" },
];

/** Usage text of `periscope events`. */
export const TELEMETRY_EVENTS_USAGE =
  "Usage: periscope events [flags]\n\nStreams process, container, flow and drop events (Telemetry/Subscribe).\n";

/** Parsed `periscope events` options. */
export interface TelemetryEventOptions {
  readonly server: string;
  readonly json: boolean;
  readonly subscription: Subscription;
}

const KINDS: Record<string, number[]> = {
  exec: [EventKind.PROCESS_EXEC],
  fork: [EventKind.PROCESS_FORK],
  exit: [EventKind.PROCESS_EXIT],
  process: [EventKind.PROCESS_EXEC, EventKind.PROCESS_FORK, EventKind.PROCESS_EXIT],
  container: [EventKind.CONTAINER],
  flow: [EventKind.FLOW],
  drop: [EventKind.DROP],
};

/** @throws UsageError naming the flag with a bad value. */
export function parseTelemetryEventArgs(
  argv: readonly string[],
  server: string | undefined,
): TelemetryEventOptions {
  const args = parseArgs(argv, TELEMETRY_EVENT_FLAGS);
  if (args.positionals.length > 0)
    throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const all = (name: string): string[] =>
    args.flags.filter((f) => f.name === name).flatMap((f) => f.value.split(","));
  const output = lastValue(args, "output") ?? "compact";
  if (output !== "compact" && output !== "json") {
    throw new UsageError(`--output: expected compact or json, got "${output}"`);
  }
  const events = new Set<number>();
  for (const t of all("type")) {
    const k = KINDS[t.trim()];
    if (!k)
      throw new UsageError(`--type: unknown event type "${t}" (${Object.keys(KINDS).join(", ")})`);
    for (const v of k) events.add(v);
  }
  const init: MessageInitShape<typeof SubscriptionSchema> = { events: [...events] };
  const binary = lastValue(args, "binary");
  const uid = lastValue(args, "uid");
  const pid = lastValue(args, "pid");
  if (binary !== undefined || uid !== undefined || pid !== undefined) {
    init.processes = [
      {
        binary: binary ?? "",
        ...(uid !== undefined ? { uid: Number(parseUint("uid", uid)) } : {}),
        pid: pid !== undefined ? Number(parseUint("pid", pid)) : 0,
      },
    ];
  }
  const cid = lastValue(args, "container-id");
  const cname = lastValue(args, "container-name");
  const cimage = lastValue(args, "container-image");
  if (cid !== undefined || cname !== undefined || cimage !== undefined) {
    init.containers = [{ id: cid ?? "", name: cname ?? "", image: cimage ?? "" }];
  }
  init.nodeNames = all("node");
  const throttle = lastValue(args, "throttle");
  if (throttle !== undefined) {
    const m = /^(\d+)\/(.+)$/.exec(throttle);
    const ms = m?.[2] !== undefined ? parseDurationMs(m[2]) : undefined;
    if (!m || ms === undefined || ms <= 0) {
      throw new UsageError(`--throttle: expected N/interval such as 100/1s, got "${throttle}"`);
    }
    init.throttle = {
      events: Number(m[1]),
      interval: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 },
    };
  }
  const limit = lastValue(args, "limit");
  if (limit !== undefined) init.limit = parseUint("limit", limit);
  const since = lastValue(args, "since");
  if (since !== undefined) init.since = parseTimeFlag("since", since);
  const until = lastValue(args, "until");
  if (until !== undefined) init.until = parseTimeFlag("until", until);
  return {
    server: lastValue(args, "server") ?? server ?? DEFAULT_SERVER,
    json: output === "json",
    subscription: create(SubscriptionSchema, init),
  };
}

function who(p: processV1.Process | undefined): string {
  if (!p) return "?";
  const name = p.binary ? p.binary.slice(p.binary.lastIndexOf("/") + 1) : p.comm;
  const ct = p.container?.name || p.container?.id.slice(0, 12);
  return `${name}[${p.tgid}]${ct ? ` in ${ct}` : ""}`;
}

/** One compact line for an event. */
export function formatTelemetryCompact(ev: TelemetryEvent): string {
  const t = ev.time ? timestampDate(ev.time).toISOString() : "-";
  const head = `${t} ${ev.nodeName}`;
  const e = ev.event;
  switch (e.case) {
    case "exec": {
      const p = e.value.process;
      const args = p?.args.slice(1).join(" ") ?? "";
      return `${head} exec      ${who(p)} uid=${p?.uid ?? 0} ${p?.binary ?? ""}${args ? ` ${args}` : ""}${p?.argsTruncated ? " …" : ""}`;
    }
    case "fork":
      return `${head} fork      ${who(e.value.process)} parent=${e.value.process?.ppid ?? 0}`;
    case "exit": {
      const run = e.value.runTime ? ` after ${durationMs(e.value.runTime).toFixed(0)}ms` : "";
      const how = e.value.signal ? `signal=${e.value.signal}` : `code=${e.value.code}`;
      return `${head} exit      ${who(e.value.process)} ${how}${run}`;
    }
    case "container": {
      const c = e.value.container;
      return `${head} container ${e.value.action} ${c?.name || "-"} (${c?.id.slice(0, 12) ?? ""} ${c?.image ?? ""})`;
    }
    case "flow":
    case "drop": {
      const f = e.value;
      const l4 = f.l4?.protocol;
      const ports =
        l4?.case === "TCP" || l4?.case === "UDP"
          ? [l4.value.sourcePort, l4.value.destinationPort]
          : undefined;
      const src = `${f.IP?.source ?? "?"}${ports ? `:${ports[0]}` : ""}`;
      const dst = `${f.IP?.destination ?? "?"}${ports ? `:${ports[1]}` : ""}`;
      return `${head} ${e.case.padEnd(9)} ${src} -> ${dst} ${l4?.case ?? ""}`;
    }
    case "lost": {
      const why =
        e.value.reason === LostReason.THROTTLED
          ? "throttled"
          : e.value.reason === LostReason.SLOW_SUBSCRIBER
            ? "slow reader"
            : "lost at the source";
      return `${head} lost      ${e.value.count} events (${why})`;
    }
    default:
      return `${head} ?`;
  }
}

/** Streams and prints; 0 when the stream ended (limit, until) or was interrupted, 1 on an error. */
export async function runTelemetryEvents(
  o: TelemetryEventOptions,
  out: (line: string) => void,
  err: (line: string) => void,
  signal: AbortSignal = new AbortController().signal,
): Promise<number> {
  const client = createClient(telemetryV1.Telemetry, observerTransport(o.server));
  try {
    for await (const ev of client.subscribe(o.subscription, { signal })) {
      out(
        o.json
          ? toJsonString(TelemetryEventSchema, ev, { registry: FLOW_EXTENSIONS })
          : formatTelemetryCompact(ev),
      );
    }
    return 0;
  } catch (e) {
    if (isCanceled(e, signal)) return 0;
    err(`periscope events: ${describeRpcError(e)}`);
    return 1;
  }
}
