import { DevstackError } from "./errors.ts";

/** Outcome of a finished command. */
export interface RunResult {
  /** Exit code; -1 when killed by a signal (e.g. on timeout). */
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@link run}. */
export interface RunOptions {
  /** Kill the command (SIGKILL) after this many ms. Default 30000. */
  timeoutMs?: number;
  /** Bytes or text written to the command's stdin. */
  stdin?: string | Uint8Array;
}

/** Runs argv to completion and collects its output. Never throws for a non-zero exit. */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  let proc: ReturnType<typeof Bun.spawn<"pipe", "pipe", "pipe">>;
  try {
    proc = Bun.spawn([...argv], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      timeout: opts.timeoutMs ?? 30_000,
      killSignal: "SIGKILL",
    });
  } catch (err) {
    throw new DevstackError(`cannot run ${argv.join(" ")}`, { cause: err });
  }
  if (opts.stdin !== undefined) proc.stdin.write(opts.stdin);
  await proc.stdin.end();
  const [stdout, stderr, exit] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code: proc.signalCode ? -1 : exit, stdout, stderr };
}

/**
 * `promtool check metrics` on an exposition text: what it printed (lint findings and
 * errors, "" when clean) and its exit code.
 */
export async function promtoolCheckMetrics(
  text: string,
): Promise<{ code: number; output: string }> {
  const r = await run(["promtool", "check", "metrics"], { stdin: text });
  return { code: r.code, output: `${r.stdout}${r.stderr}`.trim() };
}

/** Like {@link run} but throws {@link DevstackError} (with stderr) unless the exit code is 0. */
export async function runOk(argv: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) {
    throw new DevstackError(`"${argv.join(" ")}" exited with ${r.code}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}
