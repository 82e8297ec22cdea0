/**
 * The README's direct-subscriber example (examples/subscribe.ts) against a real
 * collector: it must print the ping records the collector publishes.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import {
  createVethPair,
  freePort,
  type LocalNats,
  startLocalNats,
  type VethPair,
  waitFor,
} from "@periscope/testing";

const ROOT = resolve(import.meta.dir, "..");
const canRun = process.getuid?.() === 0 && existsSync(resolve(ROOT, "bpf/build/trace.bpf.o"));

/** A child process whose stdout lines are collected. */
function spawnLines(argv: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn(argv, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines: string[] = [];
  const done = (async () => {
    const dec = new TextDecoder();
    let rest = "";
    for await (const chunk of proc.stdout) {
      const parts = (rest + dec.decode(chunk, { stream: true })).split("\n");
      rest = parts.pop() ?? "";
      lines.push(...parts);
    }
  })();
  return { proc, lines, done };
}

let nats: LocalNats;
let pair: VethPair;
const procs: ReturnType<typeof spawnLines>[] = [];

beforeAll(async () => {
  if (!canRun) return;
  nats = await startLocalNats({});
  pair = await createVethPair();
});
afterAll(async () => {
  for (const p of procs) p.proc.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.proc.exited));
  await pair?.destroy();
  await nats?.stop();
});

test.skipIf(!canRun)(
  "subscribe example - prints the trace records of a live collector",
  async () => {
    const example = spawnLines(["bun", "run", "examples/subscribe.ts", nats.url]);
    procs.push(example);
    await waitFor(() => example.lines.includes("subscribed to periscope.raw.>"), {
      what: "example subscribed",
    });
    const node = `psct-ex-${pair.nsA}`;
    const opsPort = await freePort();
    const collector = spawnLines(["bun", "run", "services/collector/src/main.ts"], {
      PERISCOPE_NATS_URL: nats.url,
      PERISCOPE_NODE_NAME: node,
      PERISCOPE_INTERFACES: `${pair.nsA}/${pair.ifA}`,
      PERISCOPE_AGGREGATION: "none", // every echo request is counted
      PERISCOPE_OPS_ADDR: `127.0.0.1:${opsPort}`,
      PERISCOPE_LOG_LEVEL: "warn",
    });
    procs.push(collector);
    await waitFor(`http://127.0.0.1:${opsPort}/readyz`, {
      timeoutMs: 20_000,
      what: "collector ready",
    });
    // Ready means connected; wait for the attach before sending traffic.
    await waitFor(
      async () =>
        /^periscope_collector_attached_interfaces 1$/m.test(
          await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text(),
        ),
      { timeoutMs: 15_000, what: "the collector attached" },
    );
    const ping = Bun.spawn(
      ["ip", "netns", "exec", pair.nsA, "ping", "-c", "2", "-i", "0.1", "-W", "2", pair.ipB],
      { stdout: "ignore", stderr: "ignore" },
    );
    expect(await ping.exited).toBe(0);
    const want = new RegExp(
      `^${node} ifindex ${pair.ifindexA} flow 0x[0-9a-f]+: ${pair.ipA} -> ${pair.ipB} proto 1$`,
    );
    await waitFor(() => example.lines.filter((l) => want.test(l)).length >= 2, {
      timeoutMs: 15_000,
      what: "the example printing 2 echo requests",
    });
    const replies = example.lines.filter((l) => l.includes(`${pair.ipB} -> ${pair.ipA} proto 1`));
    expect(replies.length).toBeGreaterThanOrEqual(2);
  },
  60_000,
);
