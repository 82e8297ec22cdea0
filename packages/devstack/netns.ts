import { DevstackError } from "./errors.ts";
import { type RunOptions, type RunResult, run, runOk } from "./run.ts";

/** Names of all network namespaces `ip netns list` shows. */
export async function listNetns(): Promise<string[]> {
  const out = await runOk(["ip", "netns", "list"]);
  return out
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n !== "");
}

/** Creates a named network namespace with `lo` up. */
export async function addNetns(name: string): Promise<void> {
  await runOk(["ip", "netns", "add", name]);
  await runOk(["ip", "-n", name, "link", "set", "lo", "up"]);
}

/** Deletes a named network namespace; a missing one is not an error. */
export async function deleteNetns(name: string): Promise<void> {
  const r = await run(["ip", "netns", "delete", name]);
  if (r.code !== 0 && (await listNetns()).includes(name)) {
    throw new DevstackError(`cannot delete netns ${name}: ${r.stderr.trim()}`);
  }
}

/** Runs argv inside a named netns (`ip netns exec`). */
export function nsExec(
  netns: string,
  argv: readonly string[],
  opts?: RunOptions,
): Promise<RunResult> {
  return run(["ip", "netns", "exec", netns, ...argv], opts);
}

/**
 * Deletes every network namespace whose name starts with `prefix` (leftovers of an
 * earlier run) and returns their names. An empty prefix is refused.
 */
export async function cleanupStale(prefix: string): Promise<string[]> {
  if (prefix === "") throw new DevstackError("cleanupStale needs a non-empty prefix");
  const stale = (await listNetns()).filter((n) => n.startsWith(prefix));
  for (const name of stale) await deleteNetns(name);
  return stale;
}
