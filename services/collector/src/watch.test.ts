import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, createMetrics } from "@periscope/telemetry";
import { createNetnsPair, runOk, waitFor } from "@periscope/testing";
import { type AttachableProgram, InterfaceAttacher } from "./attacher.ts";
import { parseInterfaces } from "./config.ts";
import { CollectorMetrics } from "./metrics.ts";
import { DeviceWatch } from "./watch.ts";

const isRoot = process.getuid?.() === 0;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.skipIf(!isRoot)("device watch (root, real netns)", () => {
  test("device watch - a namespace directory that appears later is watched, and what it names attached and forgotten", async () => {
    const ns = await createNetnsPair();
    cleanups.push(() => ns.destroy());
    await runOk(["ip", "-n", ns.nsA, "link", "add", "wt0", "type", "veth", "peer", "name", "xt0"]);
    const tmp = mkdtempSync(join(tmpdir(), "psct-watch-"));
    cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));
    // Stands in for /run/netns before the first `ip netns add`: missing at start.
    const dir = join(tmp, "netns");

    const calls: string[] = [];
    const program: AttachableProgram = {
      attach: (t) => calls.push(`attach ${t.netns}/${t.ifname}`),
      detach: (t) => calls.push(`detach ${t.netns}/${t.ifname}`),
    };
    const metrics = new CollectorMetrics(createMetrics("collector"));
    const log = createLogger("collector", "silent");
    const attacher = new InterfaceAttacher({
      patterns: parseInterfaces(`${ns.nsA}/wt*`),
      program,
      attachRetryMs: 60_000,
      metrics,
      log,
    });
    const watch = new DeviceWatch({ attacher, metrics, log, netnsDir: dir });
    cleanups.push(() => watch.close());
    expect(watch.watching()).toEqual([]);

    mkdirSync(dir);
    writeFileSync(join(dir, ns.nsA), "");
    await waitFor(() => attacher.attached().length === 1, { what: "wt0 attached" });
    expect(watch.watching()).toEqual([ns.nsA]);

    await runOk(["ip", "-n", ns.nsA, "link", "add", "wt1", "type", "veth", "peer", "name", "xt1"]);
    await waitFor(() => attacher.attached().length === 2, { what: "wt1 attached" });

    rmSync(join(dir, ns.nsA));
    await waitFor(() => attacher.attached().length === 0, { what: "everything forgotten" });
    expect(watch.watching()).toEqual([]);
    expect(calls).toEqual([
      `attach ${ns.nsA}/wt0`,
      `attach ${ns.nsA}/wt1`,
      `detach ${ns.nsA}/wt0`,
      `detach ${ns.nsA}/wt1`,
    ]);
  });
});
