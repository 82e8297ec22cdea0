/**
 * `periscope record "SRC_PREFIX SRC_PORT DST_PREFIX DST_PORT PROTO" [filter ...]`: starts a
 * recording like `hubble record` did, prints progress on one updating line, stops on
 * Ctrl-C (the recording ends cleanly) or at a stop condition, then prints the files.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { recorder } from "@periscope/proto";
import { type FlagSpec, lastValue, parseArgs, parseUint, UsageError } from "./args.ts";
import { describeRpcError } from "./client.ts";
import { observerTransport } from "./connection.ts";
import { SERVER_FLAG } from "./observe.ts";

/** Flags of `periscope record`. */
export const RECORD_FLAGS: readonly FlagSpec[] = [
  SERVER_FLAG,
  {
    name: "file-prefix",
    kind: "string",
    value: "prefix",
    help: 'File name prefix (default "hubble")',
  },
  { name: "packet-limit", kind: "string", value: "n", help: "Stop after this many packets" },
  { name: "bytes-limit", kind: "string", value: "n", help: "Stop after this many bytes" },
  {
    name: "time-limit",
    kind: "string",
    value: "duration",
    help: "Stop after this long (e.g. 10s, 2m)",
  },
  {
    name: "max-capture-len",
    kind: "string",
    value: "n",
    help: "Bytes kept of each packet (default: whole packets)",
  },
];

/** Usage of `periscope record`. */
export const RECORD_USAGE = `Usage: periscope record "SRC_PREFIX SRC_PORT DST_PREFIX DST_PORT PROTO" [more filters] [flags]

Captures matching packets on every node into pcap files (one per node) in the recorder's
storage directory. Ports 0 match any port; PROTO is TCP, UDP, SCTP or ANY.
Example: periscope record "10.0.0.1/32 0 10.0.0.2/32 80 TCP" --time-limit 30s
`;

const PROTOCOLS: Record<string, recorder.Protocol> = {
  ANY: recorder.Protocol.ANY,
  TCP: recorder.Protocol.TCP,
  UDP: recorder.Protocol.UDP,
  SCTP: recorder.Protocol.SCTP,
};

/** Parses one `"SRC_PREFIX SRC_PORT DST_PREFIX DST_PORT PROTO"` argument. */
export function parseRecordFilter(text: string): recorder.Filter {
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 5) {
    throw new UsageError(
      `filter "${text}": want "SRC_PREFIX SRC_PORT DST_PREFIX DST_PORT PROTO" (5 fields, got ${parts.length})`,
    );
  }
  const [src, sport, dst, dport, proto] = parts as [string, string, string, string, string];
  const port = (what: string, v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) > 65535) {
      throw new UsageError(`filter "${text}": ${what} "${v}" is not a port (0..65535)`);
    }
    return Number(v);
  };
  const p = PROTOCOLS[proto.toUpperCase()];
  if (p === undefined) {
    throw new UsageError(`filter "${text}": unknown protocol "${proto}" (TCP, UDP, SCTP or ANY)`);
  }
  return create(recorder.FilterSchema, {
    sourceCidr: src,
    sourcePort: port("source port", sport),
    destinationCidr: dst,
    destinationPort: port("destination port", dport),
    protocol: p,
  });
}

/** Parses `10s`, `1.5m`, `250ms`, `1h` into milliseconds. */
export function parseDurationMs(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim());
  if (!m)
    throw new UsageError(
      `invalid argument "${v}" for --${flag}: want a duration like 10s, 2m, 500ms`,
    );
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  return Number(m[1]) * unit;
}

/** A parsed `periscope record` command line. */
export interface RecordArgs {
  readonly server: string;
  readonly start: recorder.StartRecording;
}

/** Parses `periscope record` arguments; UsageError for anything wrong. */
export function parseRecordArgs(argv: readonly string[], defaultServer: string): RecordArgs {
  const args = parseArgs(argv, RECORD_FLAGS);
  if (args.positionals.length === 0) throw new UsageError("record needs at least one filter");
  const num = (name: string): bigint => {
    const v = lastValue(args, name);
    return v === undefined ? 0n : parseUint(name, v);
  };
  const time = lastValue(args, "time-limit");
  const maxLen = num("max-capture-len");
  if (maxLen > 0xffff_ffffn) throw new UsageError("--max-capture-len is too large");
  return {
    server: lastValue(args, "server") ?? defaultServer,
    start: create(recorder.StartRecordingSchema, {
      filesink: { filePrefix: lastValue(args, "file-prefix") ?? "" },
      include: args.positionals.map(parseRecordFilter),
      maxCaptureLength: Number(maxLen),
      stopCondition: {
        packetsCapturedCount: num("packet-limit"),
        bytesCapturedCount: num("bytes-limit"),
        ...(time !== undefined
          ? { timeElapsed: durationFromMs(parseDurationMs("time-limit", time)) }
          : {}),
      },
    }),
  };
}

/** Where `runRecord` writes. */
export interface RecordIo {
  out(line: string): void;
  err(line: string): void;
  /** Replaces the progress line (a terminal rewrites it in place). */
  progress(line: string): void;
  /** Aborted on Ctrl-C: the recording is stopped (not abandoned). */
  signal: AbortSignal;
}

/** Runs one recording to its end; returns the exit code (1 when the call failed). */
export async function runRecord(a: RecordArgs, io: RecordIo): Promise<number> {
  const client = createClient(recorder.Recorder, observerTransport(a.server));
  const ended = new AbortController();
  const untilStop = new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    io.signal.addEventListener("abort", () => resolve(), { once: true });
    ended.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  async function* requests(): AsyncGenerator<recorder.RecordRequest> {
    yield create(recorder.RecordRequestSchema, { requestType: { case: "start", value: a.start } });
    await untilStop;
    if (ended.signal.aborted) return;
    yield create(recorder.RecordRequestSchema, {
      requestType: { case: "stop", value: create(recorder.StopRecordingSchema) },
    });
  }
  const files: { node: string; path: string; stats?: recorder.RecordingStatistics }[] = [];
  let started = false;
  try {
    for await (const r of client.record(requests())) {
      if (r.responseType.case === "running") {
        if (!started) {
          started = true;
          io.out("Started recording. Press Ctrl-C to stop.");
        }
        const s = r.responseType.value.stats;
        io.progress(
          `${s?.packetsCaptured ?? 0n} packets (${s?.bytesCaptured ?? 0n} bytes) captured, ${s?.packetsLost ?? 0n} lost`,
        );
      } else if (r.responseType.case === "stopped") {
        const v = r.responseType.value;
        files.push({ node: r.nodeName, path: v.filesink?.filePath ?? "", stats: v.stats });
      }
    }
  } catch (err) {
    io.progress("");
    io.err(`periscope: record failed: ${describeRpcError(err)}`);
    return 1;
  } finally {
    ended.abort();
  }
  io.progress("");
  let packets = 0n;
  let bytes = 0n;
  let lost = 0n;
  for (const f of files) {
    packets += f.stats?.packetsCaptured ?? 0n;
    bytes += f.stats?.bytesCaptured ?? 0n;
    lost += f.stats?.packetsLost ?? 0n;
  }
  io.out(`Stopped recording: ${packets} packets (${bytes} bytes) captured, ${lost} lost.`);
  for (const f of files) io.out(`${f.node}: ${f.path}`);
  return 0;
}
