import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNetnsPair, type NetnsPair, runOk, waitFor } from "@periscope/testing";
import { type DirChange, DirWatcher, FdPoller, type LinkChange, LinkWatcher } from "./index.ts";
import { isRoot } from "./test-helpers.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function poller(): FdPoller {
  const errors: unknown[] = [];
  const p = new FdPoller((err) => errors.push(err));
  cleanups.push(async () => {
    await p.close();
    expect(errors).toEqual([]);
  });
  return p;
}

describe("fd poller", () => {
  test("dir watcher - reports entries added and removed, in order", async () => {
    const dir = mkdtempSync(join(tmpdir(), "psct-dirwatch-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const seen: DirChange[] = [];
    const w = new DirWatcher(dir, poller(), (changes) => seen.push(...changes));
    cleanups.push(() => w.close());
    writeFileSync(join(dir, "a"), "");
    mkdirSync(join(dir, "b"));
    rmSync(join(dir, "a"));
    await waitFor(() => seen.length >= 3, { what: "three directory changes" });
    expect(seen).toEqual([
      { kind: "added", name: "a" },
      { kind: "added", name: "b" },
      { kind: "removed", name: "a" },
    ]);
  });

  test("dir watcher - a missing directory is a BpfError naming it", () => {
    expect(() => new DirWatcher("/nonexistent/psct-dir", poller(), () => {})).toThrow(
      /inotify_add_watch\(\/nonexistent\/psct-dir\): ENOENT/,
    );
  });

  test("fd poller - close is safe twice and a closed poller refuses fds", async () => {
    const p = new FdPoller(() => {});
    await p.close();
    await p.close();
    expect(() => p.add(0, () => {})).toThrow(/closed/);
  });
});

describe.skipIf(!isRoot)("link watcher (root, real netns)", () => {
  test("link watcher - devices added and removed in a watched namespace are reported, others not", async () => {
    const ns: NetnsPair = await createNetnsPair();
    cleanups.push(() => ns.destroy());
    const seen: { netns: string; change: LinkChange }[] = [];
    const w = new LinkWatcher(
      {
        onChanges: (netns, changes) => {
          for (const change of changes) seen.push({ netns, change });
        },
        onOverrun: () =>
          seen.push({
            netns: "overrun",
            change: { kind: "del", ifname: "", ifindex: 0, loopback: false },
          }),
        onError: (err) => {
          throw err;
        },
      },
      poller(),
    );
    cleanups.push(() => w.close());
    w.watch(ns.nsA);
    expect(w.watching()).toEqual([ns.nsA]);
    await runOk([
      "ip",
      "-n",
      ns.nsB,
      "link",
      "add",
      "lwb0",
      "type",
      "veth",
      "peer",
      "name",
      "lwb1",
    ]);
    await runOk([
      "ip",
      "-n",
      ns.nsA,
      "link",
      "add",
      "lwa0",
      "type",
      "veth",
      "peer",
      "name",
      "lwa1",
    ]);
    await waitFor(() => seen.some((s) => s.change.ifname === "lwa0"), { what: "lwa0 added" });
    await runOk(["ip", "-n", ns.nsA, "link", "del", "lwa0"]);
    await waitFor(() => seen.some((s) => s.change.kind === "del" && s.change.ifname === "lwa0"), {
      what: "lwa0 removed",
    });
    expect(seen.every((s) => s.netns === ns.nsA)).toBe(true);
    expect(seen.some((s) => s.change.ifname.startsWith("lwb"))).toBe(false);
    w.unwatch(ns.nsA);
    expect(w.watching()).toEqual([]);
  });

  test("link watcher - a namespace that does not exist is a BpfError", () => {
    const w = new LinkWatcher(
      { onChanges: () => {}, onOverrun: () => {}, onError: () => {} },
      poller(),
    );
    expect(() => w.watch("psct-no-such-netns")).toThrow(/psct-no-such-netns/);
  });
});
