/** tcpdump (and other tools) run inside a bench's network namespace. */

import { runOk } from "@periscope/devstack";
import type { VethPair } from "@periscope/testing";
import type { Teardown } from "./procs.ts";
import { until } from "./report.ts";

/** A child process of the bench. */
export type Child = ReturnType<typeof Bun.spawn>;

/** Runs `argv` inside network namespace `ns`, stdout and stderr piped. */
export function nsSpawn(ns: string, argv: string[]): Child {
  return Bun.spawn(["ip", "netns", "exec", ns, ...argv], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
}

/** Ends `p` with `signal`, then SIGKILL if it has not exited within `graceMs`; nothing if it has exited. */
export async function stopChild(p: Child, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill(signal);
  const done = await Promise.race([
    p.exited.then(() => true),
    Bun.sleep(graceMs).then(() => false),
  ]);
  if (!done) {
    p.kill("SIGKILL");
    await p.exited;
  }
}

/**
 * An iperf3 server on `port` in `pair.nsB`, returned once `pair.nsA` connects to it
 * (15 s at most); `teardown` ends it (SIGTERM, SIGKILL after `graceMs`).
 */
export async function startIperf3Server(
  pair: VethPair,
  port: number,
  teardown: Teardown,
  graceMs: number,
): Promise<Child> {
  const server = nsSpawn(pair.nsB, ["iperf3", "-s", "-p", String(port)]);
  teardown.push(() => stopChild(server, "SIGTERM", graceMs));
  await until(
    "iperf3 server",
    performance.now(),
    () =>
      runOk(["ip", "netns", "exec", pair.nsA, "nc", "-z", "-w", "1", pair.ipB, String(port)]).then(
        () => true,
        () => false,
      ),
    15_000,
    100,
  );
  return server;
}

interface StderrTail {
  reader: { read(): Promise<{ value?: Uint8Array; done: boolean }> };
  text: string;
}

const tcpdumpStderr = new WeakMap<object, StderrTail>();

/**
 * tcpdump on `ifname` in `ns` writing to `file` (`snaplen` bytes a packet, 0 for all),
 * once it says it is listening; killed when it does not within 10 s.
 */
export async function startTcpdump(
  ns: string,
  ifname: string,
  file: string,
  snaplen: number,
  filter: string[],
): Promise<Child> {
  const dump = nsSpawn(ns, [
    ...["tcpdump", "-i", ifname, "-w", file, "-s", String(snaplen), "-U"],
    ...filter,
  ]);
  const reader = (dump.stderr as ReadableStream<Uint8Array>).getReader();
  let text = "";
  try {
    await until(
      "tcpdump listening",
      performance.now(),
      async () => {
        const { value, done } = await reader.read();
        if (done) throw new Error(`tcpdump exited: ${text}`);
        text += new TextDecoder().decode(value);
        return text.includes("listening on");
      },
      10_000,
      1,
    );
  } catch (err) {
    dump.kill("SIGKILL");
    throw err;
  }
  // The rest of stderr (the exit summary) is read through tcpdumpOutput().
  tcpdumpStderr.set(dump, { reader, text });
  return dump;
}

/** Everything a tcpdump from {@link startTcpdump} wrote to stderr, after it exited. */
export async function tcpdumpOutput(dump: Child): Promise<string> {
  const s = tcpdumpStderr.get(dump);
  if (s === undefined) return "";
  let text = s.text;
  for (;;) {
    const { value, done } = await s.reader.read();
    if (done) return text;
    text += new TextDecoder().decode(value);
  }
}

/** Parses tcpdump's exit summary ("N packets captured", "M packets dropped by kernel"). */
export function tcpdumpCounts(stderr: string): { captured: number; dropped: number } {
  const num = (re: RegExp): number => Number(re.exec(stderr)?.[1] ?? 0);
  return {
    captured: num(/(\d+) packets? captured/),
    dropped: num(/(\d+) packets? dropped by kernel/),
  };
}
