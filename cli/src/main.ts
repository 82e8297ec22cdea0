/**
 * `periscope` — command-line client of the Periscope observer, flag-compatible with
 * `hubble` where the same thing is meant.
 */
import pkg from "../package.json" with { type: "json" };
import { flagHelp, lastValue, parseArgs, UsageError } from "./args.ts";
import { loadCliEnv } from "./config.ts";
import { CONNECTION_FLAGS, extractConnectionArgs, setConnection } from "./connection.ts";
import { MONITOR_FLAGS, parseMonitorArgs, runMonitor } from "./monitor.ts";
import { OBSERVE_FLAGS, parseObserveArgs, runObserve, SERVER_FLAG } from "./observe.ts";
import { POLICY_FLAGS, POLICY_USAGE, runPolicy } from "./policy.ts";
import { parseRecordArgs, RECORD_FLAGS, RECORD_USAGE, runRecord } from "./record.ts";
import { runListNamespaces, runListNodes, runStatus } from "./status.ts";

/** "periscope 0.1.0" */
export const CLI_VERSION = `periscope ${pkg.version}`;

const USAGE = `Usage: periscope <command> [flags]

Commands:
  observe          Observe flows of the observer (like hubble observe)
  monitor          Print kernel records and agent events as collectors publish them (like cilium monitor)
  policy           Apply, list or delete L3/L4 policies (apply -f FILE, list, delete NAME)
  record           Capture matching packets on every node into pcap files (like hubble record)
  status           Show the observer's status
  list nodes       List the nodes that publish flows
  list namespaces  List namespaces seen in flows
  version          Print the version

Run "periscope observe --help" for observe's flags.

Connection flags (every command that calls the observer; also PERISCOPE_TLS, PERISCOPE_TLS_CA_CERT_FILES, ...):
${flagHelp(CONNECTION_FLAGS)}`;

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
  /** Environment for connection settings (`PERISCOPE_TLS...`); absent: none. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** Parses flags that only take `--server`; returns the server to use. */
function serverOnly(argv: readonly string[], io: CliIo): string {
  const args = parseArgs(argv, [SERVER_FLAG]);
  if (args.positionals.length > 0)
    throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  return lastValue(args, "server") ?? io.server;
}

/** Runs one CLI invocation; returns the process exit code (2 = usage error). */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...all] = argv;
  try {
    const { argv: rest, conn } = extractConnectionArgs(all, io.env ?? {});
    setConnection(conn);
    if (
      rest.includes("--help") ||
      rest.includes("-h") ||
      command === "help" ||
      command === "--help" ||
      command === "-h"
    ) {
      io.out(
        command === "observe"
          ? `Usage: periscope observe [flags]\n\nFlags:\n${flagHelp(OBSERVE_FLAGS)}`
          : command === "monitor"
            ? `Usage: periscope monitor [flags]\n\nFlags:\n${flagHelp(MONITOR_FLAGS)}`
            : command === "policy"
              ? `${POLICY_USAGE}\n${flagHelp(POLICY_FLAGS)}`
              : command === "record"
                ? `${RECORD_USAGE}\nFlags:\n${flagHelp(RECORD_FLAGS)}`
                : USAGE,
      );
      return 0;
    }
    switch (command) {
      case "observe": {
        const args = rest[0] === "flows" ? rest.slice(1) : rest;
        return await runObserve(parseObserveArgs(args, io.server), io.out, io.err, io.signal);
      }
      case "monitor":
        return await runMonitor(parseMonitorArgs(rest, io.natsUrl ?? loadCliEnv().natsUrl), io);
      case "policy":
        return await runPolicy(rest, io.natsUrl ?? loadCliEnv().natsUrl, io);
      case "record":
        return await runRecord(parseRecordArgs(rest, io.server), {
          ...io,
          progress: io.progress ?? (() => {}),
        });
      case "status":
        return await runStatus(serverOnly(rest, io), io.out, io.err);
      case "list": {
        const [what, ...flags] = rest;
        if (what === "nodes") return await runListNodes(serverOnly(flags, io), io.out, io.err);
        if (what === "namespaces")
          return await runListNamespaces(serverOnly(flags, io), io.out, io.err);
        throw new UsageError(`unknown list target "${what ?? ""}" (expected nodes or namespaces)`);
      }
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
  const write = (stream: NodeJS.WriteStream) => (line: string) => {
    stream.write(`${line}\n`);
  };
  runCli(process.argv.slice(2), {
    out: write(process.stdout),
    err: write(process.stderr),
    signal: ac.signal,
    server: loadCliEnv().server,
    env: process.env,
    progress: (line) => {
      if (process.stderr.isTTY) process.stderr.write(line === "" ? "\r\x1b[K" : `\r\x1b[K${line}`);
    },
  }).then(
    (code) => {
      process.exitCode = code;
      // Let stdout drain before exiting (pipes are asynchronous).
      process.stdout.write("", () => process.exit(code));
    },
    (e: unknown) => {
      process.stderr.write(
        `periscope: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
      );
      process.exit(1);
    },
  );
}
