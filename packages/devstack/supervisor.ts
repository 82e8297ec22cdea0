import { appendFileSync } from "node:fs";
import { forwardLines } from "@periscope/bus";
import { DevstackError, WaitAbortedError } from "./errors.ts";
import { waitFor } from "./wait.ts";

/** Options for {@link Supervisor}. */
export interface SupervisorOptions {
  /** Append `[name] line` to this file instead of writing to stderr. */
  logFile?: string;
  /** Receives every `[name] line` instead (overrides logFile). */
  sink?: (line: string) => void;
  /** Grace period between SIGTERM and SIGKILL in stop(), ms (default 5000). */
  stopTimeoutMs?: number;
  /** Lines of output kept per process for {@link SupervisedProcess.lines} (default 500). */
  keepLines?: number;
}

/** Options for one child. */
export interface StartOptions {
  /** Variables added to the inherited environment (via env(1)). */
  env?: Record<string, string>;
  cwd?: string;
}

/** A child process under supervision. */
export interface SupervisedProcess {
  readonly name: string;
  readonly pid: number;
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number>;
  /** Exit code, or null while running. */
  exitCode(): number | null;
  /** Signal that ended it (e.g. "SIGKILL"), or null. */
  signalCode(): string | null;
  /** The last output lines (stdout and stderr interleaved as they arrived). */
  lines(): string[];
  /** Polls until an output line matches, then returns it. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends a signal. */
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Starts named child processes, forwards their output line by line with a `[name]`
 * prefix, and stops them all (SIGTERM, then SIGKILL after a grace period).
 */
export class Supervisor {
  readonly #procs = new Map<string, SupervisedProcess>();
  readonly #write: (line: string) => void;
  readonly #stopTimeoutMs: number;
  readonly #keep: number;

  constructor(opts: SupervisorOptions = {}) {
    const { logFile, sink } = opts;
    this.#write =
      sink ??
      (logFile
        ? (line) => appendFileSync(logFile, `${line}\n`)
        : (line) => process.stderr.write(`${line}\n`));
    this.#stopTimeoutMs = opts.stopTimeoutMs ?? 5000;
    this.#keep = opts.keepLines ?? 500;
  }

  /** Starts `argv` under `name` (unique while running). */
  start(name: string, argv: readonly string[], opts: StartOptions = {}): SupervisedProcess {
    const existing = this.#procs.get(name);
    if (existing && existing.exitCode() === null) {
      throw new DevstackError(`a process named "${name}" is already running`);
    }
    const envArgs = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`);
    const full = envArgs.length > 0 ? ["env", ...envArgs, ...argv] : [...argv];
    let proc: ReturnType<typeof Bun.spawn<"ignore", "pipe", "pipe">>;
    try {
      proc = Bun.spawn(full, {
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
      });
    } catch (err) {
      throw new DevstackError(`cannot start ${name}: ${argv.join(" ")}`, { cause: err });
    }
    const kept: string[] = [];
    const onLine = (line: string): void => {
      kept.push(line);
      if (kept.length > this.#keep) kept.shift();
      this.#write(`[${name}] ${line}`);
    };
    const pumps = Promise.all([
      forwardLines(proc.stdout, onLine),
      forwardLines(proc.stderr, onLine),
    ]);
    let drained = false;
    const exited = proc.exited.then(async (code) => {
      await pumps;
      drained = true;
      return code;
    });
    const sp: SupervisedProcess = {
      name,
      pid: proc.pid,
      exited,
      exitCode: () => proc.exitCode,
      signalCode: () => proc.signalCode,
      lines: () => [...kept],
      async waitForLine(re, timeoutMs = 10_000) {
        let found: string | undefined;
        await waitFor(
          () => {
            found = kept.find((l) => re.test(l));
            if (found === undefined && drained) {
              throw new WaitAbortedError(`${name} exited (${proc.exitCode}) before printing ${re}`);
            }
            return found !== undefined;
          },
          { timeoutMs, what: `${name} output matching ${re}` },
        );
        return found ?? "";
      },
      kill: (signal = "SIGTERM") => proc.kill(signal),
    };
    this.#procs.set(name, sp);
    return sp;
  }

  /** The process started under `name`, if any. */
  get(name: string): SupervisedProcess | undefined {
    return this.#procs.get(name);
  }

  /** Exit codes so far: null for still running. */
  exitCodes(): Record<string, number | null> {
    return Object.fromEntries([...this.#procs].map(([n, p]) => [n, p.exitCode()]));
  }

  /** SIGTERM one process, SIGKILL after the grace period; resolves with its exit code. */
  async stopOne(name: string, timeoutMs = this.#stopTimeoutMs): Promise<number> {
    const p = this.#procs.get(name);
    if (!p) throw new DevstackError(`no process named "${name}"`);
    if (p.exitCode() !== null || p.signalCode() !== null) return p.exited;
    p.kill("SIGTERM");
    const done = await Promise.race([
      p.exited.then(() => true),
      Bun.sleep(timeoutMs).then(() => false),
    ]);
    if (!done) {
      this.#write(`[${name}] did not exit within ${timeoutMs} ms of SIGTERM; sending SIGKILL`);
      p.kill("SIGKILL");
    }
    return p.exited;
  }

  /** Stops every process (latest started first); resolves with all exit codes. */
  async stop(timeoutMs = this.#stopTimeoutMs): Promise<Record<string, number | null>> {
    for (const name of [...this.#procs.keys()].reverse()) await this.stopOne(name, timeoutMs);
    return this.exitCodes();
  }
}
