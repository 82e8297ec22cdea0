import { runOk } from "@periscope/devstack";

/** Ids of every BPF program currently loaded in the kernel (`bpftool prog show`). */
export async function loadedProgIds(): Promise<Set<number>> {
  const progs = JSON.parse(await runOk(["bpftool", "-j", "prog", "show"])) as { id: number }[];
  return new Set(progs.map((p) => p.id));
}

/**
 * BPF program ids of the tc filters on a device's ingress or egress hook, inside a named
 * netns or (netns `undefined`) in the host's own namespace.
 */
export async function tcFilterProgIds(
  netns: string | undefined,
  dev: string,
  hook: "ingress" | "egress",
): Promise<number[]> {
  const inNs = netns === undefined ? [] : ["ip", "netns", "exec", netns];
  const out = (await runOk([...inNs, "tc", "-j", "filter", "show", "dev", dev, hook])).trim();
  const filters = (out === "" ? [] : JSON.parse(out)) as { options?: { prog?: { id: number } } }[];
  return filters.flatMap((f) => (f.options?.prog ? [f.options.prog.id] : []));
}

/** True when a device (in the host's namespace, or inside `netns`) has a clsact qdisc. */
export async function hasClsact(dev: string, netns?: string): Promise<boolean> {
  const inNs = netns === undefined ? [] : ["-n", netns];
  const out = (await runOk(["tc", ...inNs, "-j", "qdisc", "show", "dev", dev])).trim();
  const qdiscs = (out === "" ? [] : JSON.parse(out)) as { kind: string }[];
  return qdiscs.some((q) => q.kind === "clsact");
}
