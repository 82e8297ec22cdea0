/**
 * `periscope monitor` — like `cilium monitor`: prints every kernel record as the
 * collectors publish it. A plain core NATS subscription to `periscope.raw.<node>.*`
 * (JetStream-stored publishes reach core subscribers too, so the enrichers' work queue
 * is not touched) and to `periscope.agent.<node>` for agent events.
 */
import { fromBinary } from "@bufbuild/protobuf";
import {
  openDropReasonRegistry,
  openEndpointRegistry,
  openInterfaceRegistry,
  subjects,
} from "@periscope/bus";
import { debugTypeName } from "@periscope/flow";
import { type EndpointInfo, parseIp } from "@periscope/model";
import {
  type GetAgentEventsResponse,
  GetAgentEventsResponseSchema,
  type RawFrame,
} from "@periscope/proto";
import { decodeRawFrame, rawFrameRecords } from "@periscope/wire";
import { type FlagSpec, isSet, lastValue, parseArgs, UsageError } from "./args.ts";
import { agentEventJson, agentEventLine } from "./monitor-agent.ts";
import {
  formatRecordLine,
  hexDump,
  type MonitorNames,
  recordJson,
  verboseHeader,
} from "./monitor-format.ts";
import { decodeMonitorRecord, type MonitorRecord, type RecordKind } from "./monitor-records.ts";
import { connectCliBusOrExit } from "./nats.ts";

/** Event types `--type` accepts. */
export const MONITOR_TYPES = ["trace", "drop", "policy-verdict", "debug", "agent", "lost"] as const;
/** One of {@link MONITOR_TYPES}. */
export type MonitorType = (typeof MONITOR_TYPES)[number];

/** Flags of `periscope monitor`. */
export const MONITOR_FLAGS: readonly FlagSpec[] = [
  {
    name: "type",
    short: "t",
    kind: "string",
    value: "type",
    help: `Only these event types (repeatable): ${MONITOR_TYPES.join(", ")}`,
  },
  {
    name: "from",
    kind: "string",
    value: "ip|cidr|ns/pod",
    help: "Only packets from this address, network or endpoint",
  },
  {
    name: "to",
    kind: "string",
    value: "ip|cidr|ns/pod",
    help: "Only packets to this address, network or endpoint",
  },
  {
    name: "verbose",
    short: "v",
    kind: "bool",
    help: "Add a header line and a hex dump of the captured bytes",
  },
  { name: "json", short: "j", kind: "bool", help: "One JSON object per line" },
  { name: "node", kind: "string", value: "name", help: "Only this node (default: every node)" },
  {
    name: "nats",
    kind: "string",
    value: "url",
    help: "NATS URL (env PERISCOPE_NATS_URL, default nats://127.0.0.1:4222)",
  },
  { name: "server", kind: "string", value: "url", help: "Same as --nats" },
];

/** A `--from`/`--to` selector. */
export type AddressSelector =
  | { readonly kind: "cidr"; readonly bytes: Uint8Array; readonly bits: number }
  | { readonly kind: "endpoint"; readonly namespace: string; readonly pod: string };

/** A parsed `periscope monitor` invocation. */
export interface MonitorOptions {
  readonly natsUrl: string;
  readonly node?: string | undefined;
  /** Empty: every type. */
  readonly types: ReadonlySet<MonitorType>;
  readonly from?: AddressSelector | undefined;
  readonly to?: AddressSelector | undefined;
  readonly verbose: boolean;
  readonly json: boolean;
}

/** Parses an IP, a CIDR or `namespace/pod`. Throws {@link UsageError} naming the flag. */
export function parseSelector(flag: string, text: string): AddressSelector {
  const slash = text.lastIndexOf("/");
  if (slash > 0) {
    const bytes = parseIp(text.slice(0, slash));
    if (bytes !== undefined) {
      const bitsText = text.slice(slash + 1);
      const bits = Number(bitsText);
      if (!/^\d+$/.test(bitsText) || bits > bytes.length * 8) {
        throw new UsageError(`invalid argument "${text}" for --${flag}: bad prefix length`);
      }
      return { kind: "cidr", bytes, bits };
    }
    const [namespace, pod, extra] = text.split("/");
    if (namespace && pod && extra === undefined) return { kind: "endpoint", namespace, pod };
  } else {
    const bytes = parseIp(text);
    if (bytes !== undefined) return { kind: "cidr", bytes, bits: bytes.length * 8 };
  }
  throw new UsageError(
    `invalid argument "${text}" for --${flag}: expected an IP, a CIDR or namespace/pod`,
  );
}

/** Parses monitor's flags; `defaultNats` is the environment's NATS URL. */
export function parseMonitorArgs(argv: readonly string[], defaultNats: string): MonitorOptions {
  const args = parseArgs(argv, MONITOR_FLAGS);
  if (args.positionals.length > 0)
    throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const types = new Set<MonitorType>();
  for (const f of args.flags) {
    if (f.name !== "type") continue;
    for (const t of f.value.split(",")) {
      if (!(MONITOR_TYPES as readonly string[]).includes(t)) {
        throw new UsageError(
          `invalid argument "${t}" for --type: expected one of ${MONITOR_TYPES.join(", ")}`,
        );
      }
      types.add(t as MonitorType);
    }
  }
  const from = lastValue(args, "from");
  const to = lastValue(args, "to");
  return {
    natsUrl: lastValue(args, "nats") ?? lastValue(args, "server") ?? defaultNats,
    node: lastValue(args, "node"),
    types,
    from: from === undefined ? undefined : parseSelector("from", from),
    to: to === undefined ? undefined : parseSelector("to", to),
    verbose: isSet(args, "verbose"),
    json: isSet(args, "json"),
  };
}

function inCidr(ip: string, sel: { bytes: Uint8Array; bits: number }): boolean {
  const b = parseIp(ip);
  if (b === undefined || b.length !== sel.bytes.length) return false;
  for (let i = 0; i < sel.bits; i++) {
    const mask = 0x80 >> (i % 8);
    if (((b[i >> 3] ?? 0) & mask) !== ((sel.bytes[i >> 3] ?? 0) & mask)) return false;
  }
  return true;
}

/** True when `ip` is what `sel` selects; `lookup` resolves endpoints. */
export function selects(
  sel: AddressSelector,
  ip: string | undefined,
  lookup: (ip: string) => EndpointInfo | undefined,
): boolean {
  if (ip === undefined) return false;
  if (sel.kind === "cidr") return inCidr(ip, sel);
  const ep = lookup(ip);
  return ep !== undefined && ep.namespace === sel.namespace && ep.podName === sel.pod;
}

/** Where monitor output goes. */
export interface MonitorIo {
  out(line: string): void;
  err(line: string): void;
  /** Aborted on Ctrl-C: the monitor then exits 0. */
  signal: AbortSignal;
}

/** What a run saw, for tests and the final summary on stderr. */
export interface MonitorCounts {
  frames: number;
  records: number;
  printed: number;
  malformed: number;
}

function timeIso(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  return Number.isFinite(ms) && ms > 0 ? new Date(ms).toISOString() : "-";
}

/**
 * Prints every event of one RawFrame that `opts` selects; decoding failures go to `err`
 * and are counted, never thrown.
 */
export function printFrame(
  frame: RawFrame,
  opts: MonitorOptions,
  names: MonitorNames,
  io: Pick<MonitorIo, "out" | "err">,
  counts: MonitorCounts,
): void {
  const node = frame.nodeName;
  const want = (t: MonitorType) => opts.types.size === 0 || opts.types.has(t);
  const lost = (n: bigint, what: string, cpu?: number): void => {
    if (n === 0n || !want("lost")) return;
    counts.printed++;
    const from = cpu === undefined ? what : `CPU ${cpu}`;
    io.out(
      opts.json
        ? JSON.stringify({
            type: "lost",
            node,
            source: what,
            lost: Number(n),
            ...(cpu === undefined ? {} : { cpu }),
          })
        : `!!! Lost ${n} events from ${from} on node ${node}`,
    );
  };
  counts.frames++;
  if (frame.kernelLosses.length > 0) {
    for (const l of frame.kernelLosses) lost(l.count, "kernel ring buffer", l.cpu);
  } else {
    lost(frame.kernelLost, "kernel ring buffer");
  }
  lost(frame.collectorLost, "collector queue");
  const { records, malformed, reason } = rawFrameRecords(frame);
  if (malformed > 0) {
    counts.malformed += malformed;
    io.err(`periscope monitor: ${malformed} packed records of ${node} skipped: ${reason ?? ""}`);
  }
  for (const bytes of records) {
    counts.records++;
    let rec: MonitorRecord;
    try {
      rec = decodeMonitorRecord(bytes);
    } catch (err) {
      counts.malformed++;
      io.err(
        `periscope monitor: record of ${node} skipped: ${err instanceof Error ? err.message : String(err)}`,
      );
      continue;
    }
    if (!want(rec.kind satisfies RecordKind)) continue;
    if (opts.from || opts.to) {
      const ip = "packet" in rec ? rec.packet?.ip : undefined;
      const lookup = (a: string) => names.endpoint(a);
      if (opts.from && !selects(opts.from, ip?.source, lookup)) continue;
      if (opts.to && !selects(opts.to, ip?.destination, lookup)) continue;
    }
    const time = timeIso(rec.tsBootNs + frame.bootToRealtimeNs);
    counts.printed++;
    if (opts.json) {
      io.out(JSON.stringify(recordJson(node, rec, time, names, opts.verbose)));
      continue;
    }
    if (opts.verbose) io.out(verboseHeader(node, rec, time));
    io.out(formatRecordLine(node, rec, names));
    if (opts.verbose && "data" in rec) for (const l of hexDump(rec.data)) io.out(l);
  }
}

/** Prints one agent event unless `opts` leaves it out (`--type`, or `--from`/`--to`). */
export function printAgentEvent(
  ev: GetAgentEventsResponse,
  opts: MonitorOptions,
  io: Pick<MonitorIo, "out">,
  counts: MonitorCounts,
): void {
  if (opts.types.size > 0 && !opts.types.has("agent")) return;
  if (opts.from || opts.to) return; // agent events have no addresses
  counts.printed++;
  io.out(opts.json ? JSON.stringify(agentEventJson(ev)) : agentEventLine(ev));
}

/**
 * Runs the monitor until `io.signal` aborts; returns the exit code (0 on Ctrl-C, 1 when
 * NATS cannot be reached). Interface and endpoint names come from the KV registries when
 * they are available; without them numbers are shown and `ns/pod` selectors match nothing.
 */
export async function runMonitor(opts: MonitorOptions, io: MonitorIo): Promise<number> {
  const bus = await connectCliBusOrExit("monitor", opts.natsUrl, io);
  if (typeof bus === "number") return bus;
  const counts: MonitorCounts = { frames: 0, records: 0, printed: 0, malformed: 0 };
  const endpoints = await openEndpointRegistry(bus).catch(() => undefined);
  const interfaces = await openInterfaceRegistry(bus).catch(() => undefined);
  const dropReasons = await openDropReasonRegistry(bus).catch(() => undefined);
  if (opts.from?.kind === "endpoint" || opts.to?.kind === "endpoint") {
    if (endpoints === undefined)
      io.err("periscope monitor: endpoint registry unavailable; ns/pod selectors match nothing");
    else await endpoints.ready;
  }
  const names: MonitorNames = {
    ifName: (node, cookie, ifindex) => interfaces?.lookup(node, cookie, ifindex)?.name,
    endpoint: (ip) => endpoints?.lookup(ip),
    debugType: debugTypeName,
    kernelDropReason: (node, reason) => dropReasons?.lookup(node, reason),
  };
  const rawSubject = opts.node === undefined ? subjects.rawAll : subjects.rawNode(opts.node);
  const agentSubject = opts.node === undefined ? subjects.agentAll : subjects.agent(opts.node);
  const rawSub = bus.nc.subscribe(rawSubject, {
    callback: (err, msg) => {
      if (err) return;
      try {
        printFrame(decodeRawFrame(msg.data), opts, names, io, counts);
      } catch (e) {
        counts.malformed++;
        io.err(
          `periscope monitor: frame on ${msg.subject} skipped: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    },
  });
  const agentSub = bus.nc.subscribe(agentSubject, {
    callback: (err, msg) => {
      if (err) return;
      try {
        printAgentEvent(fromBinary(GetAgentEventsResponseSchema, msg.data), opts, io, counts);
      } catch (e) {
        counts.malformed++;
        io.err(
          `periscope monitor: agent event on ${msg.subject} skipped: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    },
  });
  await bus.nc.flush();
  io.err(`Listening for events on ${rawSubject} and ${agentSubject} (Ctrl-C to stop)`);
  if (!io.signal.aborted) {
    await new Promise<void>((resolve) =>
      io.signal.addEventListener("abort", () => resolve(), { once: true }),
    );
  }
  rawSub.unsubscribe();
  agentSub.unsubscribe();
  await endpoints?.close();
  await interfaces?.close();
  await dropReasons?.close();
  await bus.close();
  io.err(
    `Received ${counts.frames} frames, ${counts.records} records; printed ${counts.printed} events, skipped ${counts.malformed} malformed`,
  );
  return 0;
}
