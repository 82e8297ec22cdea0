import { runOk } from "@periscope/devstack";

/** Ids of every BPF program currently loaded in the kernel (`bpftool prog show`). */
export async function loadedProgIds(): Promise<Set<number>> {
  const progs = JSON.parse(await runOk(["bpftool", "-j", "prog", "show"])) as { id: number }[];
  return new Set(progs.map((p) => p.id));
}

/** BPF program ids of the tc filters on a device's ingress or egress hook inside a netns. */
export async function tcFilterProgIds(
  netns: string,
  dev: string,
  hook: "ingress" | "egress",
): Promise<number[]> {
  const out = (
    await runOk(["ip", "netns", "exec", netns, "tc", "-j", "filter", "show", "dev", dev, hook])
  ).trim();
  const filters = (out === "" ? [] : JSON.parse(out)) as { options?: { prog?: { id: number } } }[];
  return filters.flatMap((f) => (f.options?.prog ? [f.options.prog.id] : []));
}
