import { rmdirSync } from "node:fs";
import { waitFor } from "@periscope/devstack";

/**
 * Removes a test's cgroup directory, waiting (up to `timeoutMs`) for its last process to
 * leave it; a failure is printed, not thrown, so the rest of a cleanup still runs.
 */
export async function removeCgroup(dir: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    () => {
      try {
        rmdirSync(dir);
        return true;
      } catch {
        return false;
      }
    },
    { timeoutMs, what: `cgroup ${dir} removed` },
  ).catch((err: unknown) => console.error(err));
}
