/**
 * Test support for the collector's integration tests: commands, a veth pair between
 * two fresh network namespaces, and checks that nothing is left attached.
 */
import { randomBytes } from "node:crypto";

/** A command exited non-zero. */
export class CommandError extends Error {
  override name = "CommandError";
}

/** Runs argv, returns stdout; throws CommandError with stderr on a non-zero exit. */
export async function run(argv: string[]): Promise<string> {
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new CommandError(`${argv.join(" ")} exited ${code}: ${err.trim()}`);
  return out;
}

/** Polls `check` every 20 ms until it returns a value other than undefined, or throws at the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** Two namespaces joined by a veth pair with IPv4 addresses .1 (a) and .2 (b). */
export interface VethPair {
  readonly nsA: string;
  readonly nsB: string;
  readonly ifA: string;
  readonly ifB: string;
  readonly ipA: string;
  readonly ipB: string;
  /** ifindex of ifA inside nsA. */
  readonly ifindexA: number;
  destroy(): Promise<void>;
}

/** Creates `psct-<rand>-a/-b` namespaces joined by veth `pa<rand>`/`pb<rand>` on 10.231.0.0/24. */
export async function createVethPair(): Promise<VethPair> {
  const ns = await createNetnsPair();
  const ifA = `pa${ns.id}`;
  const ifB = `pb${ns.id}`;
  const ipA = "10.231.0.1";
  const ipB = "10.231.0.2";
  try {
    const ifindexA = await addVeth(ns, ifA, ifB, ipA, ipB);
    return { nsA: ns.nsA, nsB: ns.nsB, ifA, ifB, ipA, ipB, ifindexA, destroy: ns.destroy };
  } catch (err) {
    await ns.destroy();
    throw err;
  }
}

/** BPF program ids of the tc filters on a device's ingress or egress hook (in a netns). */
export async function tcFilterProgIds(
  netns: string,
  dev: string,
  hook: "ingress" | "egress",
): Promise<number[]> {
  const out = await run(["ip", "netns", "exec", netns, "tc", "filter", "show", "dev", dev, hook]);
  return [...out.matchAll(/\bid (\d+)/g)].map((m) => Number(m[1]));
}

/** Ids of every BPF program currently loaded in the kernel. */
export async function loadedProgIds(): Promise<Set<number>> {
  const progs = JSON.parse(await run(["bpftool", "-j", "prog", "show"])) as { id: number }[];
  return new Set(progs.map((p) => p.id));
}

/** Two empty network namespaces `psct-<rand>-a/-b` (loopback up) and a `psct`-unique id. */
export interface NetnsPair {
  readonly id: string;
  readonly nsA: string;
  readonly nsB: string;
  destroy(): Promise<void>;
}

/** Creates two empty namespaces; devices are added later with {@link addVeth}. */
export async function createNetnsPair(): Promise<NetnsPair> {
  const id = randomBytes(4).toString("hex");
  const nsA = `psct-${id}-a`;
  const nsB = `psct-${id}-b`;
  const destroy = async (): Promise<void> => {
    for (const ns of [nsA, nsB]) {
      const proc = Bun.spawn(["ip", "netns", "delete", ns], { stdout: "ignore", stderr: "ignore" });
      await proc.exited;
    }
  };
  try {
    for (const ns of [nsA, nsB]) {
      await run(["ip", "netns", "add", ns]);
      await run(["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    return { id, nsA, nsB, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}

/**
 * Adds veth `ifA` (in nsA, `ipA`/24) ↔ `ifB` (in nsB, `ipB`/24), both up; returns the
 * ifindex of ifA.
 */
export async function addVeth(
  ns: NetnsPair,
  ifA: string,
  ifB: string,
  ipA: string,
  ipB: string,
): Promise<number> {
  await run([
    "ip",
    "-n",
    ns.nsA,
    "link",
    "add",
    ifA,
    "type",
    "veth",
    "peer",
    "name",
    ifB,
    "netns",
    ns.nsB,
  ]);
  await run(["ip", "-n", ns.nsA, "addr", "add", `${ipA}/24`, "dev", ifA]);
  await run(["ip", "-n", ns.nsB, "addr", "add", `${ipB}/24`, "dev", ifB]);
  await run(["ip", "-n", ns.nsA, "link", "set", ifA, "up"]);
  await run(["ip", "-n", ns.nsB, "link", "set", ifB, "up"]);
  return ifindexOf(ns.nsA, ifA);
}

/** ifindex of a device inside a named netns. */
export async function ifindexOf(netns: string, ifname: string): Promise<number> {
  const links = JSON.parse(await run(["ip", "-n", netns, "-j", "link", "show", ifname])) as {
    ifindex: number;
  }[];
  const ifindex = links[0]?.ifindex;
  if (ifindex === undefined) throw new Error(`no ifindex for ${netns}/${ifname}`);
  return ifindex;
}
