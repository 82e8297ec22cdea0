import { appendFileSync } from "node:fs";
import { forwardLines } from "@periscope/model";
import { formatDelay, RestartBackoff, type RestartPolicy } from "./backoff.ts";
import { DevstackError, WaitAbortedError } from "./errors.ts";
import { waitFor } from "./wait.ts";

/** Options for {@link Supervisor}. */
export interface SupervisorOptions {
  /** Append `[name] line` to this file instead of writing to stderr. */
  logFile?: string;
  /** Receives every `[name] line` instead (overrides logFile). */
  sink?: (line: string) => void;
  /**
   * Receives one plain line per lifecycle change worth a person's attention, e.g.
   * "enricher exited (signal SIGKILL); restarting in 1s (restart #1)". Default: the sink.
   */
  notice?: (line: string) => void;
  /** Receives every lifecycle change as data (counted restarts, exit reasons). */
  onEvent?: (event: SupervisorEvent) => void;
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
  /** Restart it when it exits on its own (not after stop()); absent: never. */
  restart?: RestartPolicy;
  /**
   * "pipe" (default): output forwarded line by line with the `[name]` prefix;
   * "inherit": the child writes straight to this process's stdout and stderr.
   */
  output?: "pipe" | "inherit";
}

/** A lifecycle change of a supervised name. */
export type SupervisorEvent =
  | {
      readonly kind: "exit";
      readonly name: string;
      readonly pid: number;
      readonly code: number | null;
      readonly signal: string | null;
      /** How long that run lasted, ms. */
      readonly upMs: number;
      /** Delay before the restart, ms; undefined when it will not be restarted. */
      readonly restartInMs: number | undefined;
      /** Restarts so far, counting the one just scheduled. */
      readonly restarts: number;
    }
  | {
      readonly kind: "restart";
      readonly name: string;
      readonly pid: number;
      readonly restarts: number;
    };

/** A child process under supervision (one run of it: a restart is a new one). */
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

/** Options for {@link Supervisor.stop}. */
export interface StopOptions {
  /**
   * The children already got a signal (a terminal's Ctrl-C reaches the whole process
   * group): wait up to `settleMs` for them to exit before sending SIGTERM, so a service
   * busy with its graceful stop is not signalled twice.
   */
  alreadySignalled?: boolean;
  /** How long to wait for already signalled children, ms (default 3000). */
  settleMs?: number;
}

interface Slot {
  readonly argv: readonly string[];
  readonly opts: StartOptions;
  readonly backoff: RestartBackoff | undefined;
  restarts: number;
  stopped: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** "exited (signal SIGKILL)" / "exited with code 3". */
function exitText(code: number | null, signal: string | null): string {
  return signal !== null ? `exited (signal ${signal})` : `exited with code ${code}`;
}

/**
 * Starts named child processes, forwards their output line by line with a `[name]`
 * prefix, restarts the ones started with a {@link RestartPolicy} when they exit on their
 * own (exponential backoff, capped, reset after a long enough run), and stops them all
 * (SIGTERM, then SIGKILL after a grace period).
 */
export class Supervisor {
  readonly #procs = new Map<string, SupervisedProcess>();
  readonly #slots = new Map<string, Slot>();
  readonly #write: (line: string) => void;
  readonly #notice: (line: string) => void;
  readonly #onEvent: (event: SupervisorEvent) => void;
  readonly #stopTimeoutMs: number;
  readonly #keep: number;

  constructor(opts: SupervisorOptions = {}) {
    const { logFile, sink } = opts;
    this.#write =
      sink ??
      (logFile
        ? (line) => appendFileSync(logFile, `${line}\n`)
        : (line) => process.stderr.write(`${line}\n`));
    this.#notice = opts.notice ?? this.#write;
    this.#onEvent = opts.onEvent ?? (() => {});
    this.#stopTimeoutMs = opts.stopTimeoutMs ?? 5000;
    this.#keep = opts.keepLines ?? 500;
  }

  /** Starts `argv` under `name` (unique while running or waiting for a restart). */
  start(name: string, argv: readonly string[], opts: StartOptions = {}): SupervisedProcess {
    const existing = this.#procs.get(name);
    const slot = this.#slots.get(name);
    const running = existing && existing.exitCode() === null && existing.signalCode() === null;
    if (running || slot?.timer !== undefined) {
      throw new DevstackError(`a process named "${name}" is already running`);
    }
    const fresh: Slot = {
      argv,
      opts,
      backoff: opts.restart ? new RestartBackoff(opts.restart) : undefined,
      restarts: 0,
      stopped: false,
      timer: undefined,
    };
    this.#slots.set(name, fresh);
    return this.#spawn(name, fresh);
  }

  #spawn(name: string, slot: Slot): SupervisedProcess {
    const { argv, opts } = slot;
    const envArgs = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`);
    const full = envArgs.length > 0 ? ["env", ...envArgs, ...argv] : [...argv];
    const io = opts.output === "inherit" ? "inherit" : "pipe";
    let proc: ReturnType<typeof Bun.spawn>;
    try {
      proc = Bun.spawn(full, {
        stdin: "ignore",
        stdout: io,
        stderr: io,
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
      });
    } catch (err) {
      throw new DevstackError(`cannot start ${name}: ${argv.join(" ")}`, { cause: err });
    }
    const startedMs = Date.now();
    const kept: string[] = [];
    const onLine = (line: string): void => {
      kept.push(line);
      if (kept.length > this.#keep) kept.shift();
      this.#write(`[${name}] ${line}`);
    };
    const { stdout, stderr } = proc;
    const pumps = Promise.all(
      [stdout, stderr].map((s) => (s instanceof ReadableStream ? forwardLines(s, onLine) : null)),
    );
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
    void proc.exited.then(() => this.#exited(name, slot, sp, Date.now() - startedMs));
    return sp;
  }

  /** Decides what follows one run's exit: nothing (stopped, no policy) or a restart. */
  #exited(name: string, slot: Slot, sp: SupervisedProcess, upMs: number): void {
    if (slot.stopped || this.#slots.get(name) !== slot) return;
    const code = sp.exitCode();
    const signal = sp.signalCode();
    const backoff = slot.backoff;
    let restartInMs: number | undefined;
    if (backoff?.shouldRestart(signal !== null ? null : code)) {
      restartInMs = backoff.next(upMs);
      slot.restarts++;
      slot.timer = setTimeout(() => {
        slot.timer = undefined;
        if (slot.stopped) return;
        try {
          const next = this.#spawn(name, slot);
          this.#onEvent({ kind: "restart", name, pid: next.pid, restarts: slot.restarts });
        } catch (err) {
          this.#notice(`${name} could not be restarted: ${String(err)}`);
        }
      }, restartInMs);
    }
    const what = exitText(code, signal);
    if (restartInMs !== undefined) {
      this.#notice(
        `${name} ${what}; restarting in ${formatDelay(restartInMs)} (restart #${slot.restarts})`,
      );
    } else if (backoff) {
      this.#notice(
        code === 0
          ? `${name} ${what}; not restarting`
          : `${name} ${what}; not restarting (that exit code means restarting cannot help)`,
      );
    }
    this.#onEvent({
      kind: "exit",
      name,
      pid: sp.pid,
      code,
      signal,
      upMs,
      restartInMs,
      restarts: slot.restarts,
    });
  }

  /** The current (latest) run of `name`, if any. */
  get(name: string): SupervisedProcess | undefined {
    return this.#procs.get(name);
  }

  /** Restarts of `name` so far (scheduled ones included). */
  restarts(name: string): number {
    return this.#slots.get(name)?.restarts ?? 0;
  }

  /** True while `name` runs or waits to be restarted; false once it is stopped or given up. */
  alive(name: string): boolean {
    const slot = this.#slots.get(name);
    if (!slot || slot.stopped) return false;
    return slot.timer !== undefined || this.#procs.get(name)?.exitCode() === null;
  }

  /** Exit codes so far: null for still running. */
  exitCodes(): Record<string, number | null> {
    return Object.fromEntries([...this.#procs].map(([n, p]) => [n, p.exitCode()]));
  }

  /**
   * A stop is under way: from now on nothing is restarted and exits are not announced
   * (children may already be exiting on a terminal's Ctrl-C). {@link stop} does this too.
   */
  releaseAll(): void {
    for (const name of this.#slots.keys()) this.#release(name);
  }

  /** Ends supervision of `name`: no restart from now on; a pending one is cancelled. */
  #release(name: string): void {
    const slot = this.#slots.get(name);
    if (!slot) return;
    slot.stopped = true;
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    slot.timer = undefined;
  }

  /** SIGTERM one process, SIGKILL after the grace period; resolves with its exit code. */
  async stopOne(name: string, timeoutMs = this.#stopTimeoutMs): Promise<number> {
    const p = this.#procs.get(name);
    if (!p) throw new DevstackError(`no process named "${name}"`);
    this.#release(name);
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

  /**
   * Stops every process (latest started first) and cancels pending restarts; resolves
   * with all exit codes. With `alreadySignalled`, first waits for the children to exit
   * on the signal they got, and signals only those still running after `settleMs`.
   */
  async stop(
    timeoutMs = this.#stopTimeoutMs,
    opts: StopOptions = {},
  ): Promise<Record<string, number | null>> {
    const names = [...this.#procs.keys()].reverse();
    for (const name of names) this.#release(name);
    if (opts.alreadySignalled) {
      const running = names.map((n) => this.#procs.get(n)?.exited).filter((e) => e !== undefined);
      await Promise.race([Promise.all(running), Bun.sleep(opts.settleMs ?? 3000)]);
    }
    for (const name of names) await this.stopOne(name, timeoutMs);
    return this.exitCodes();
  }
}
