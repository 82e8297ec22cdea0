/**
 * The Docker engine the compose test runs against: the one already answering, or a dockerd
 * started here (the flags these machines use: no iptables rules, no default bridge) and
 * stopped again by {@link Engine.stop}.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { WaitAbortedError, waitFor } from "@periscope/devstack";

/**
 * Debian's client, built for the engine Debian ships; a newer client earlier in PATH
 * (e.g. /usr/local/bin/docker) also works, as clients negotiate the API version down.
 */
export const DOCKER = existsSync("/usr/bin/docker") ? "/usr/bin/docker" : "docker";

/** A reachable engine; `stop()` ends dockerd only when {@link ensureEngine} started it. */
export interface Engine {
  readonly started: boolean;
  stop(): Promise<void>;
}

/** Output of a finished command. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv to completion (never throws for a non-zero exit). */
export async function exec(
  argv: readonly string[],
  opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<Output> {
  const proc = Bun.spawn([...argv], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    timeout: opts.timeoutMs ?? 120_000,
    killSignal: "SIGKILL",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code: proc.signalCode ? -1 : code, stdout, stderr };
}

/** Like {@link exec} but throws, with stderr, unless the exit code is 0. */
export async function execOk(
  argv: readonly string[],
  opts: Parameters<typeof exec>[1] = {},
): Promise<string> {
  const r = await exec(argv, opts);
  if (r.code !== 0) {
    throw new Error(`"${argv.join(" ")}" exited with ${r.code}:\n${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

const engineAnswers = async (): Promise<boolean> =>
  (await exec([DOCKER, "info", "--format", "{{.ServerVersion}}"], { timeoutMs: 10_000 })).code ===
  0;

/** Returns the running engine, or starts dockerd and waits until it answers. */
export async function ensureEngine(): Promise<Engine> {
  if (await engineAnswers()) return { started: false, stop: async () => {} };

  const dir = mkdtempSync(join(tmpdir(), "periscope-dockerd-"));
  const logPath = join(dir, "dockerd.log");
  const proc = Bun.spawn(
    ["dockerd", "--iptables=false", "--bridge=none", "--storage-driver=overlay2"],
    { stdin: "ignore", stdout: Bun.file(logPath), stderr: Bun.file(logPath) },
  );
  const logTail = (): string => {
    try {
      return readFileSync(logPath, "utf8").trim().split("\n").slice(-15).join("\n");
    } catch {
      return "(no log)";
    }
  };
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null) {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
      await proc.exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null) {
          throw new WaitAbortedError(`dockerd exited with ${proc.exitCode}:\n${logTail()}`);
        }
        return engineAnswers();
      },
      { timeoutMs: 60_000, intervalMs: 250, what: "dockerd answering" },
    );
  } catch (err) {
    const tail = logTail();
    await stop();
    throw new Error(`could not start dockerd:\n${tail}`, { cause: err });
  }
  return { started: true, stop };
}

/** The base image tests' containers run on (made from the cached Debian root, no registry). */
export const BASE_IMAGE = "debian:12-slim";

/**
 * Makes {@link BASE_IMAGE} exist in the engine: imported from the cached Debian root by
 * scripts/lib/docker-images.sh (with the nats image compose.yaml uses) when missing;
 * prints what it made.
 */
export async function ensureBaseImage(): Promise<void> {
  const has = await exec([DOCKER, "image", "inspect", BASE_IMAGE], { timeoutMs: 30_000 });
  if (has.code === 0) return;
  const script = resolve(import.meta.dir, "../../scripts/lib/docker-images.sh");
  const made = await execOk(["bash", script, "nats:2.10-alpine"], {
    env: { DOCKER },
    timeoutMs: 600_000,
  });
  if (made.trim()) console.log(made.trim());
}

/** True while a process with this pid runs. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes the containers and networks an earlier, killed test run left in the engine: those
 * carrying `label` whose value (the pid of the test process that made them) no longer runs.
 */
export async function removeStale(label: string): Promise<void> {
  const owned = async (kind: "ps" | "network"): Promise<string[]> => {
    const out = await execOk(
      [
        DOCKER,
        ...(kind === "ps" ? ["ps", "-a"] : ["network", "ls"]),
        "--filter",
        `label=${label}`,
        "--format",
        `{{.ID}} {{.Label "${label}"}}`,
      ],
      { timeoutMs: 60_000 },
    );
    return out
      .split("\n")
      .filter((l) => l.trim() !== "")
      .filter((l) => !alive(Number(l.split(" ")[1])))
      .map((l) => l.split(" ")[0] as string);
  };
  const containers = await owned("ps");
  if (containers.length > 0) await exec([DOCKER, "rm", "-f", ...containers]);
  const networks = await owned("network");
  if (networks.length > 0) await exec([DOCKER, "network", "rm", ...networks]);
}
