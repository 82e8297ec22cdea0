/**
 * `periscope flows` — flow records (bytes and packets per flow) as the collectors evict
 * them from their kernel tables, read from `periscope.netflows.<node>` (protobuf
 * periscope.netflow.v1.NetflowRecords), summed per flow and node, largest first.
 * Without `-f` it listens for `--window` and prints once; with `-f` it redraws every
 * `--interval` until Ctrl-C.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { subjects } from "@periscope/bus";
import { canonicalIp, formatIPv4, formatIPv6 } from "@periscope/model";
import { netflowV1 } from "@periscope/proto";
import { type FlagSpec, isSet, lastValue, parseArgs, UsageError } from "./args.ts";
import { connectCliBusOrExit } from "./nats.ts";
import { parseDurationMs } from "./time.ts";

/** Flags of `periscope flows`. */
export const FLOWS_FLAGS: readonly FlagSpec[] = [
  {
    name: "top",
    kind: "string",
    value: "N",
    help: "Only the N largest flows (default 20, 0 = all)",
  },
  {
    name: "by",
    kind: "string",
    value: "bytes|packets",
    help: "Order by bytes (default) or packets",
  },
  {
    name: "output",
    short: "o",
    kind: "string",
    value: "table|json",
    help: "Output format (default table)",
  },
  {
    name: "ip",
    kind: "string",
    value: "addr",
    help: "Only flows from or to this address (repeatable)",
  },
  {
    name: "port",
    kind: "string",
    value: "N",
    help: "Only flows from or to this port (repeatable)",
  },
  {
    name: "protocol",
    kind: "string",
    value: "tcp|udp|icmp|icmpv6|N",
    help: "Only this protocol (repeatable)",
  },
  { name: "node", kind: "string", value: "name", help: "Only this node (default: every node)" },
  {
    name: "pod",
    kind: "string",
    value: "ns/name",
    help: "Only flows from or to this pod (repeatable; names the enricher knows)",
  },
  {
    name: "namespace",
    short: "n",
    kind: "string",
    value: "ns",
    help: "Only flows from or to pods of this namespace (repeatable)",
  },
  { name: "follow", short: "f", kind: "bool", help: "Keep listening, redraw every --interval" },
  {
    name: "interval",
    kind: "string",
    value: "duration",
    help: "Redraw period with -f (default 1s)",
  },
  {
    name: "window",
    kind: "string",
    value: "duration",
    help: "Listening time without -f (default 6s)",
  },
  { name: "nats", kind: "string", value: "url", help: "NATS URL (env PERISCOPE_NATS_URL)" },
  { name: "server", kind: "string", value: "url", help: "Same as --nats" },
];

/** Usage line of `periscope flows`. */
export const FLOWS_USAGE = "Usage: periscope flows [flags]\n";

const PROTOCOLS: Readonly<Record<string, number>> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 };
const PROTOCOL_NAMES = new Map(Object.entries(PROTOCOLS).map(([k, v]) => [v, k.toUpperCase()]));

/** A parsed `periscope flows` invocation. */
export interface FlowsOptions {
  readonly natsUrl: string;
  readonly node?: string | undefined;
  /** 0 = all. */
  readonly top: number;
  readonly by: "bytes" | "packets";
  readonly output: "table" | "json";
  /** Canonical address texts; empty = any. */
  readonly ips: ReadonlySet<string>;
  readonly ports: ReadonlySet<number>;
  readonly protocols: ReadonlySet<number>;
  /** `ns/name` of pods; empty = any. */
  readonly pods: ReadonlySet<string>;
  readonly namespaces: ReadonlySet<string>;
  readonly follow: boolean;
  readonly intervalMs: number;
  readonly windowMs: number;
}

function values(args: ReturnType<typeof parseArgs>, name: string): string[] {
  return args.flags.filter((f) => f.name === name).flatMap((f) => f.value.split(","));
}

function durationFlag(args: ReturnType<typeof parseArgs>, name: string, dflt: number): number {
  const v = lastValue(args, name);
  if (v === undefined) return dflt;
  const ms = parseDurationMs(v);
  if (ms === undefined || ms <= 0)
    throw new UsageError(`invalid argument "${v}" for --${name}: expected a duration like 2s`);
  return ms;
}

/** Parses the flags; {@link UsageError} names the flag and value that are wrong. */
export function parseFlowsArgs(argv: readonly string[], defaultNats: string): FlowsOptions {
  const args = parseArgs(argv, FLOWS_FLAGS);
  if (args.positionals.length > 0)
    throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const topText = lastValue(args, "top") ?? "20";
  if (!/^\d+$/.test(topText))
    throw new UsageError(`invalid argument "${topText}" for --top: expected a number`);
  const by = lastValue(args, "by") ?? "bytes";
  if (by !== "bytes" && by !== "packets")
    throw new UsageError(`invalid argument "${by}" for --by: expected bytes or packets`);
  const output = lastValue(args, "output") ?? "table";
  if (output !== "table" && output !== "json")
    throw new UsageError(`invalid argument "${output}" for --output: expected table or json`);
  const ips = new Set<string>();
  for (const v of values(args, "ip")) {
    const ip = canonicalIp(v);
    if (ip === undefined) throw new UsageError(`invalid argument "${v}" for --ip: not an address`);
    ips.add(ip);
  }
  const ports = new Set<number>();
  for (const v of values(args, "port")) {
    const p = Number(v);
    if (!/^\d+$/.test(v) || p > 65535)
      throw new UsageError(`invalid argument "${v}" for --port: expected 0..65535`);
    ports.add(p);
  }
  const protocols = new Set<number>();
  for (const v of values(args, "protocol")) {
    const p = PROTOCOLS[v.toLowerCase()] ?? (/^\d+$/.test(v) ? Number(v) : Number.NaN);
    if (!(p >= 0 && p <= 255))
      throw new UsageError(
        `invalid argument "${v}" for --protocol: expected tcp, udp, icmp, icmpv6 or 0..255`,
      );
    protocols.add(p);
  }
  const pods = new Set<string>();
  for (const v of values(args, "pod")) {
    const [ns, name, extra] = v.split("/");
    if (!ns || !name || extra !== undefined)
      throw new UsageError(`invalid argument "${v}" for --pod: expected namespace/name`);
    pods.add(v);
  }
  return {
    natsUrl: lastValue(args, "nats") ?? lastValue(args, "server") ?? defaultNats,
    node: lastValue(args, "node"),
    pods,
    namespaces: new Set(values(args, "namespace")),
    top: Number(topText),
    by,
    output,
    ips,
    ports,
    protocols,
    follow: isSet(args, "follow"),
    intervalMs: durationFlag(args, "interval", 1000),
    windowMs: durationFlag(args, "window", 6000),
  };
}

/** One flow summed over its records (all interfaces and directions of one node). */
export interface FlowRow {
  node: string;
  src: string;
  dst: string;
  proto: number;
  srcPort: number;
  dstPort: number;
  icmpType: number;
  icmpCode: number;
  bytes: bigint;
  packets: bigint;
  records: number;
  /** Records the collector marked as duplicates (not summed). */
  duplicates: number;
  firstMs: number;
  lastMs: number;
  tcpFlags: number;
  interfaces: Set<string>;
  /** `ns/name` of each end where the enricher knew it. */
  srcPod?: string | undefined;
  dstPod?: string | undefined;
}

function podText(e: netflowV1.Endpoint | undefined): string | undefined {
  return e === undefined || e.podName === "" ? undefined : `${e.namespace}/${e.podName}`;
}

function ipText(ip: netflowV1.Ip | undefined): string {
  const f = ip?.ipFamily;
  if (f?.case === "ipv4") {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, f.value);
    return formatIPv4(b, 0);
  }
  if (f?.case === "ipv6" && f.value.length === 16) return formatIPv6(f.value, 0);
  return "?";
}

function tsMs(t: { seconds: bigint; nanos: number } | undefined): number {
  return t === undefined ? 0 : Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
}

/** Flow rows keyed by node and 5-tuple; records are added as they arrive. */
export class FlowTable {
  readonly rows = new Map<string, FlowRow>();

  /** Adds one record unless `opts`' filters leave it out; returns whether it was kept. */
  add(node: string, r: netflowV1.NetflowRecord, opts: FlowsOptions): boolean {
    const src = ipText(r.network?.srcAddr);
    const dst = ipText(r.network?.dstAddr);
    const t = r.transport;
    const proto = t?.protocol ?? 0;
    const sp = t?.srcPort ?? 0;
    const dp = t?.dstPort ?? 0;
    if (opts.node !== undefined && node !== opts.node) return false;
    if (opts.ips.size > 0 && !opts.ips.has(src) && !opts.ips.has(dst)) return false;
    if (opts.ports.size > 0 && !opts.ports.has(sp) && !opts.ports.has(dp)) return false;
    if (opts.protocols.size > 0 && !opts.protocols.has(proto)) return false;
    const ends = [r.srcEndpoint, r.dstEndpoint];
    if (
      opts.namespaces.size > 0 &&
      !ends.some((e) => e !== undefined && opts.namespaces.has(e.namespace))
    )
      return false;
    if (
      opts.pods.size > 0 &&
      !ends.some((e) => e !== undefined && opts.pods.has(`${e.namespace}/${e.podName}`))
    )
      return false;
    const key = `${node}|${src}|${dst}|${proto}|${sp}|${dp}|${r.icmpType}|${r.icmpCode}`;
    let row = this.rows.get(key);
    if (row === undefined) {
      row = {
        node,
        src,
        dst,
        proto,
        srcPort: sp,
        dstPort: dp,
        icmpType: r.icmpType,
        icmpCode: r.icmpCode,
        bytes: 0n,
        packets: 0n,
        records: 0,
        duplicates: 0,
        firstMs: Number.POSITIVE_INFINITY,
        lastMs: 0,
        tcpFlags: 0,
        interfaces: new Set(),
        srcPod: podText(r.srcEndpoint),
        dstPod: podText(r.dstEndpoint),
      };
      this.rows.set(key, row);
    }
    row.records++;
    row.interfaces.add(r.interface);
    if (r.duplicate) {
      row.duplicates++;
      return true;
    }
    row.bytes += r.bytes;
    row.packets += r.packets;
    row.firstMs = Math.min(row.firstMs, tsMs(r.timeFlowStart));
    row.lastMs = Math.max(row.lastMs, tsMs(r.timeFlowEnd));
    row.tcpFlags |= r.flags;
    return true;
  }

  /** Rows ordered by `by` (largest first, ties by key), cut to `top` (0 = all). */
  sorted(by: "bytes" | "packets", top: number): FlowRow[] {
    const rows = [...this.rows.values()].sort((a, b) => {
      const d = by === "bytes" ? b.bytes - a.bytes : b.packets - a.packets;
      return d > 0n ? 1 : d < 0n ? -1 : a.firstMs - b.firstMs;
    });
    return top > 0 ? rows.slice(0, top) : rows;
  }
}

function protoName(p: number): string {
  return PROTOCOL_NAMES.get(p) ?? String(p);
}

function endpoint(addr: string, port: number, icmp: boolean): string {
  if (icmp) return addr;
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function withPod(text: string, pod: string | undefined): string {
  return pod === undefined ? text : `${pod} (${text})`;
}

/** One row as JSON (numbers as numbers, times as ISO strings). */
export function flowRowJson(r: FlowRow): Record<string, unknown> {
  const icmp = r.proto === 1 || r.proto === 58;
  return {
    node: r.node,
    source: r.src,
    destination: r.dst,
    ...(r.srcPod !== undefined ? { source_pod: r.srcPod } : {}),
    ...(r.dstPod !== undefined ? { destination_pod: r.dstPod } : {}),
    protocol: protoName(r.proto),
    ...(icmp
      ? { icmp_type: r.icmpType, icmp_code: r.icmpCode }
      : { source_port: r.srcPort, destination_port: r.dstPort }),
    bytes: Number(r.bytes),
    packets: Number(r.packets),
    records: r.records,
    duplicates: r.duplicates,
    first: Number.isFinite(r.firstMs) ? new Date(r.firstMs).toISOString() : null,
    last: r.lastMs > 0 ? new Date(r.lastMs).toISOString() : null,
    ...(r.proto === 6 ? { tcp_flags: r.tcpFlags } : {}),
    interfaces: [...r.interfaces].sort(),
  };
}

/** Rows as an aligned table with a header line. */
export function flowTableLines(rows: readonly FlowRow[]): string[] {
  const cells = [
    ["NODE", "SOURCE", "DESTINATION", "PROTO", "BYTES", "PACKETS", "DURATION", "INTERFACES"],
  ];
  for (const r of rows) {
    const icmp = r.proto === 1 || r.proto === 58;
    const dur = Number.isFinite(r.firstMs) ? `${((r.lastMs - r.firstMs) / 1000).toFixed(1)}s` : "-";
    cells.push([
      r.node,
      withPod(endpoint(r.src, r.srcPort, icmp), r.srcPod),
      withPod(endpoint(r.dst, r.dstPort, icmp), r.dstPod),
      icmp ? `${protoName(r.proto)} ${r.icmpType}/${r.icmpCode}` : protoName(r.proto),
      String(r.bytes),
      String(r.packets),
      dur,
      [...r.interfaces].sort().join(","),
    ]);
  }
  const widths = cells[0]?.map((_, i) => Math.max(...cells.map((c) => (c[i] ?? "").length))) ?? [];
  return cells.map((c) =>
    c
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd(),
  );
}

/** Where flows output goes. */
export interface FlowsIo {
  out(line: string): void;
  err(line: string): void;
  /** Aborted on Ctrl-C. */
  signal: AbortSignal;
  /** stdout is a terminal: `-f` redraws in place. */
  isTty?: boolean;
}

function print(table: FlowTable, opts: FlowsOptions, io: FlowsIo): void {
  const rows = table.sorted(opts.by, opts.top);
  if (opts.output === "json") {
    for (const r of rows) io.out(JSON.stringify(flowRowJson(r)));
    return;
  }
  for (const l of flowTableLines(rows)) io.out(l);
}

/**
 * Listens on the flow subjects and prints; returns the exit code (1 when NATS cannot be
 * reached). Malformed messages are counted and reported on stderr, never fatal.
 */
export async function runFlows(opts: FlowsOptions, io: FlowsIo): Promise<number> {
  const bus = await connectCliBusOrExit("flows", opts.natsUrl, io);
  if (typeof bus === "number") return bus;
  const table = new FlowTable();
  let malformed = 0;
  const subject = opts.node === undefined ? subjects.netflowsAll : subjects.netflows(opts.node);
  const sub = bus.nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return;
      const node = msg.subject.slice("periscope.netflows.".length);
      try {
        const batch = fromBinary(netflowV1.NetflowRecordsSchema, msg.data);
        for (const r of batch.entries) table.add(r.node || node, r, opts);
      } catch (e) {
        malformed++;
        io.err(
          `periscope flows: message on ${msg.subject} skipped: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    },
  });
  await bus.nc.flush();
  io.err(`Listening for flow records on ${subject}`);
  const stopped = new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    io.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  try {
    if (!opts.follow) {
      await Promise.race([stopped, Bun.sleep(opts.windowMs)]);
      print(table, opts, io);
    } else {
      while (!io.signal.aborted) {
        await Promise.race([stopped, Bun.sleep(opts.intervalMs)]);
        if (io.isTty) io.out("\x1b[H\x1b[2J");
        else io.out(`--- ${new Date().toISOString()}`);
        print(table, opts, io);
      }
    }
  } finally {
    sub.unsubscribe();
    await bus.close();
  }
  if (malformed > 0) io.err(`periscope flows: ${malformed} malformed messages skipped`);
  return 0;
}
