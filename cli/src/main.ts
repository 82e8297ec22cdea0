/**
 * `periscope` — command-line client of the Periscope observer, flag-compatible with
 * `hubble` where the same thing is meant.
 */
import pkg from "../package.json" with { type: "json" };
import { flagHelp, lastValue, parseArgs, UsageError } from "./args.ts";
import { loadCliEnv } from "./config.ts";
import { CONNECTION_FLAGS, extractConnectionArgs, setConnection } from "./connection.ts";
import { EVENT_FLAGS, parseEventArgs, runEvents } from "./events.ts";
import { FLOWS_FLAGS, FLOWS_USAGE, parseFlowsArgs, runFlows } from "./flows.ts";
import { LineWriter } from "./line-writer.ts";
import { parseListArgs, runList } from "./list.ts";
import { MONITOR_FLAGS, parseMonitorArgs, runMonitor } from "./monitor.ts";
import {
  DEFAULT_RECONNECT,
  OBSERVE_FLAGS,
  parseObserveArgs,
  runObserve,
  SERVER_FLAG,
} from "./observe.ts";
import { POLICY_FLAGS, POLICY_USAGE, runPolicy } from "./policy.ts";
import { parseRecordArgs, RECORD_FLAGS, RECORD_USAGE, runRecord } from "./record.ts";
import { runReflect } from "./reflect.ts";
import {
  configRawFilterArgs,
  defaultConfigPath,
  durationSetting,
  envName,
  extractGlobalArgs,
  runConfig,
  SETTINGS,
  settingsEnv,
} from "./settings.ts";
import { parseStatusArgs, runStatus } from "./status.ts";
import {
  parseTelemetryEventArgs,
  runTelemetryEvents,
  TELEMETRY_EVENT_FLAGS,
  TELEMETRY_EVENTS_USAGE,
} from "./telemetry-events.ts";
import { runWatchPeers } from "./watch.ts";

/** "periscope 0.1.0" */
export const CLI_VERSION = `periscope ${pkg.version}`;

const USAGE = `Usage: periscope <command> [flags]

Commands:
  observe          Observe flows of the observer (like hubble observe; -o compact|dict|json|jsonpb|table)
  observe agent-events | debug-events   Observe agent or debug events
  events           Process exec/fork/exit, container, flow and drop events (Telemetry/Subscribe; -o compact|json)
  monitor          Print kernel records and agent events as collectors publish them (like cilium monitor)
  flows            Bytes and packets per flow as collectors evict them (--top N, -o table|json, -f)
  policy           Apply, list or delete L3/L4 policies (apply -f FILE, list, delete NAME)
  record           Capture matching packets on every node into pcap files (like hubble record)
  status           Show the observer's health and status (-o compact|dict|json|table)
  list nodes       List the nodes that publish flows (-o table|wide|json)
  list namespaces  List namespaces seen in flows in the last hour (-o table|wide|json)
  watch peers      Print peers as they appear and leave (peer.Peer/Notify)
  reflect          Print the observer's API descriptors (gRPC reflection), one JSON line each
  config           view | get KEY | set KEY VALUE | reset [KEY] the config file
  version          Print the version

Run "periscope observe --help" for observe's flags.

Global flags (every setting also from PERISCOPE_<NAME> variables and the config file):
      --config <file>            Config file (env PERISCOPE_CONFIG, default ~/.config/periscope/config.yaml)
      --timeout <duration>       Time to wait for the server to answer (default 5s)
      --request-timeout <dur>    Deadline of unary calls: status, list (default 12s)

Connection flags (every command that calls the observer; also PERISCOPE_TLS, PERISCOPE_TLS_CA_CERT_FILES, ...):
${flagHelp(CONNECTION_FLAGS)}

Settings (config file keys): ${Object.keys(SETTINGS).join(", ")}`;

/** Where a command writes; tests pass collectors, the binary passes stdout/stderr. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  server: string;
  /** NATS URL for `monitor` when `--nats` is not given (default: the environment's). */
  natsUrl?: string;
  /** Rewrites a progress line in place (`record`); absent: no progress shown. */
  progress?(line: string): void;
  /**
   * Environment for settings (`PERISCOPE_TLS...`); absent: none, and no default config
   * file is read (only one named by --config).
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** stdout is a terminal that takes colors (`--color auto`). */
  isTty?: boolean;
  /** Input of `observe --input-file -` (default: process.stdin). */
  stdin?: NodeJS.ReadableStream;
}

/** Parses flags that only take `--server`; returns the server to use. */
function serverOnly(argv: readonly string[], server: string): string {
  const args = parseArgs(argv, [SERVER_FLAG]);
  if (args.positionals.length > 0)
    throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  return lastValue(args, "server") ?? server;
}

const bool = (v: string | undefined): boolean => v !== undefined && /^(true|1)$/i.test(v);

/** `PERISCOPE_COMPAT=legacy-json-output` (hubble's HUBBLE_COMPAT): `-o json` prints bare events. */
const legacyJson = (env: Readonly<Record<string, string | undefined>>): boolean =>
  (env.PERISCOPE_COMPAT ?? "").toLowerCase().split(",").includes("legacy-json-output");

/** Runs one CLI invocation; returns the process exit code (2 = usage error). */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...all] = argv;
  try {
    const global = extractGlobalArgs(all);
    const configPath =
      global.config ??
      (io.env?.PERISCOPE_CONFIG || undefined) ??
      (io.env ? defaultConfigPath(io.env) : undefined);
    const env = settingsEnv(configPath, io.env ?? {});
    const { argv: rest, conn } = extractConnectionArgs(global.argv, env);
    setConnection(conn);
    const server = env[envName("server")] || io.server;
    const requestTimeoutMs = durationSetting("request-timeout", global.requestTimeout, env);
    const timeoutMs = durationSetting("timeout", global.timeout, env);
    const natsUrl = io.natsUrl ?? env[envName("nats-url")] ?? loadCliEnv().natsUrl;
    if (
      rest.includes("--help") ||
      rest.includes("-h") ||
      command === "help" ||
      command === "--help" ||
      command === "-h"
    ) {
      io.out(
        command === "observe" && (rest[0] === "agent-events" || rest[0] === "debug-events")
          ? `Usage: periscope observe ${rest[0]} [flags]\n\nFlags:\n${flagHelp(EVENT_FLAGS)}`
          : command === "observe"
            ? `Usage: periscope observe [flows|agent-events|debug-events] [flags]\n\nFlags:\n${flagHelp(OBSERVE_FLAGS)}`
            : command === "monitor"
              ? `Usage: periscope monitor [flags]\n\nFlags:\n${flagHelp(MONITOR_FLAGS)}`
              : command === "policy"
                ? `${POLICY_USAGE}\n${flagHelp(POLICY_FLAGS)}`
                : command === "record"
                  ? `${RECORD_USAGE}\nFlags:\n${flagHelp(RECORD_FLAGS)}`
                  : command === "events"
                    ? `${TELEMETRY_EVENTS_USAGE}\nFlags:\n${flagHelp(TELEMETRY_EVENT_FLAGS)}`
                    : command === "flows"
                      ? `${FLOWS_USAGE}\nFlags:\n${flagHelp(FLOWS_FLAGS)}`
                      : USAGE,
      );
      return 0;
    }
    switch (command) {
      case "observe": {
        if (rest[0] === "agent-events" || rest[0] === "debug-events")
          return await runEvents(
            rest[0],
            parseEventArgs(rest.slice(1), server),
            io.out,
            io.err,
            io.signal,
            legacyJson(env),
          );
        const cmdline = rest[0] === "flows" ? rest.slice(1) : rest;
        const args = [...cmdline, ...configRawFilterArgs(configPath, cmdline)];
        const opts = parseObserveArgs(args, server);
        return await runObserve(
          { ...opts, debug: opts.debug || bool(env[envName("debug")]) },
          io.out,
          io.err,
          io.signal,
          DEFAULT_RECONNECT,
          {
            isTty: io.isTty ?? false,
            legacyJson: legacyJson(env),
            ...(io.stdin ? { stdin: io.stdin } : {}),
            firstAnswerMs: timeoutMs,
          },
        );
      }
      case "monitor":
        return await runMonitor(parseMonitorArgs(rest, natsUrl), io);
      case "events":
        return await runTelemetryEvents(
          parseTelemetryEventArgs(rest, server),
          io.out,
          io.err,
          io.signal,
        );
      case "flows":
        return await runFlows(parseFlowsArgs(rest, natsUrl), io);
      case "policy":
        return await runPolicy(rest, natsUrl, io);
      case "record":
        return await runRecord(parseRecordArgs(rest, server), {
          ...io,
          progress: io.progress ?? (() => {}),
        });
      case "status":
        return await runStatus(parseStatusArgs(rest, server, requestTimeoutMs), io.out, io.err);
      case "list": {
        const [what, ...flags] = rest;
        const target = what === "node" ? "nodes" : what;
        if (target === "nodes" || target === "namespaces")
          return await runList(
            target,
            parseListArgs(flags, server, requestTimeoutMs),
            io.out,
            io.err,
          );
        throw new UsageError(`unknown list target "${what ?? ""}" (expected nodes or namespaces)`);
      }
      case "watch": {
        const [what, ...flags] = rest;
        if (what !== "peers" && what !== "peer")
          throw new UsageError(`unknown watch target "${what ?? ""}" (expected peers)`);
        return await runWatchPeers(serverOnly(flags, server), io.out, io.err, io.signal);
      }
      case "reflect":
        return await runReflect(serverOnly(rest, server), io.out, io.err, io.signal);
      case "config":
        if (configPath === undefined)
          throw new UsageError("no config file: pass --config FILE or set PERISCOPE_CONFIG");
        return runConfig(rest, configPath, env, io.out);
      case "version":
        io.out(CLI_VERSION);
        return 0;
      case undefined:
        throw new UsageError("missing command");
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`periscope: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}

if (import.meta.main) {
  const ac = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => ac.abort());
  const stdout = new LineWriter(process.stdout);
  runCli(process.argv.slice(2), {
    out: stdout.line,
    err: (line) => {
      stdout.flush();
      process.stderr.write(`${line}\n`);
    },
    signal: ac.signal,
    server: loadCliEnv().server,
    env: process.env,
    // `--color auto`: colors on a terminal unless NO_COLOR is set or TERM=dumb (as hubble).
    isTty:
      process.stdout.isTTY === true &&
      (process.env.NO_COLOR ?? "") === "" &&
      process.env.TERM !== "dumb",
    progress: (line) => {
      if (process.stderr.isTTY) process.stderr.write(line === "" ? "\r\x1b[K" : `\r\x1b[K${line}`);
    },
  }).then(
    (code) => {
      stdout.flush();
      process.exitCode = code;
      // Let stdout drain before exiting (pipes are asynchronous).
      process.stdout.write("", () => process.exit(code));
    },
    (e: unknown) => {
      stdout.flush();
      process.stderr.write(
        `periscope: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
      );
      process.exit(1);
    },
  );
}
