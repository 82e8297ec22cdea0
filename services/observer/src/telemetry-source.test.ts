import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { removeCgroup, waitFor } from "@periscope/testing";
import { CgroupIds } from "./telemetry-source.ts";

/** The cgroup v2 mount, when there is one. */
function cgroup2Root(): string | undefined {
  for (const line of readFileSync("/proc/self/mounts", "utf8").split("\n")) {
    const [, dir, type] = line.split(" ");
    if (type === "cgroup2" && dir !== undefined) return dir;
  }
  return undefined;
}

const ROOT = cgroup2Root();
const made: string[] = [];
const procs: Bun.Subprocess[] = [];

afterAll(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.exited));
  for (const dir of made.reverse()) await removeCgroup(dir);
});

describe.skipIf(process.getuid?.() !== 0 || ROOT === undefined)("cgroup ids", () => {
  test("a cgroup made since the last walk: found through the process's /proc entry at once", async () => {
    const root = ROOT as string;
    const ids = new CgroupIds(root, 3_600_000); // one walk only
    const first = `/psct-obs-${process.pid}-a`;
    mkdirSync(join(root, first));
    made.push(join(root, first));
    const firstId = statSync(join(root, first), { bigint: true }).ino;
    expect(ids.path(firstId)).toBe(first); // a walk
    // Made after that walk, which is not done again.
    const late = `/psct-obs-${process.pid}-b`;
    mkdirSync(join(root, late));
    made.push(join(root, late));
    const lateId = statSync(join(root, late), { bigint: true }).ino;
    const p = Bun.spawn([
      "/bin/sh",
      "-c",
      `echo $$ > ${join(root, late)}/cgroup.procs && exec sleep 29.1 0.9`,
    ]);
    procs.push(p);
    await waitFor(() => readFileSync(`/proc/${p.pid}/cgroup`, "utf8").includes(late), {
      timeoutMs: 5000,
      what: "sleep in the new cgroup",
    });
    expect(ids.path(lateId)).toBeUndefined(); // no walk, no process named
    expect(ids.path(lateId, p.pid)).toBe(late);
    expect(ids.path(lateId)).toBe(late); // remembered
    // A process in another cgroup does not name this one.
    expect(ids.path(lateId + 1_000_000n, p.pid)).toBeUndefined();
  });
});
