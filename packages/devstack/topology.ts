import { randomBytes } from "node:crypto";
import { DevstackError } from "./errors.ts";
import { addNetns, deleteNetns, nsExec } from "./netns.ts";
import { type RunOptions, type RunResult, runOk } from "./run.ts";
import { waitFor } from "./wait.ts";

/** A pod to create. */
export interface PodSpec {
  /** `[a-z0-9-]+`; the netns is `<prefix><name>`. */
  name: string;
  /** Kubernetes-style namespace (default "demo"). */
  namespace?: string;
  /** `key=value` labels (default `["app=<name>"]`). */
  labels?: string[];
}

/** A created pod: its own netns with `eth0` on the node bridge. */
export interface Pod {
  name: string;
  namespace: string;
  labels: string[];
  netns: string;
  /** Always "eth0". */
  ifname: string;
  /** The veth peer in the node netns, enslaved to the bridge. */
  hostIfname: string;
  ipv4: string;
  ipv6: string;
}

/** The "node": a netns holding the bridge every pod is plugged into. */
export interface NodeInfo {
  netns: string;
  bridge: string;
  ipv4: string;
  ipv6: string;
}

/** Extra process handle returned by {@link Topology.spawn}. */
export type PodProcess = ReturnType<typeof Bun.spawn<"ignore", "pipe", "pipe">>;

/** A demo topology made of real network namespaces. */
export interface Topology {
  readonly prefix: string;
  readonly node: NodeInfo;
  readonly pods: readonly Pod[];
  /** `"<pod netns>/eth0"` for every pod — where a collector attaches. */
  readonly interfaces: readonly string[];
  /** The pod with this name; throws DevstackError when unknown. */
  pod(name: string): Pod;
  /** Runs argv in the pod's netns (or in the node netns for `"node"`). */
  exec(pod: string | Pod, argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts a long-running process in the pod's netns; destroy() kills it if still running. */
  spawn(pod: string | Pod, argv: readonly string[]): PodProcess;
  /** Kills spawned processes and deletes every namespace created; safe to call twice. */
  destroy(): Promise<void>;
}

/** Options for {@link createDemoTopology}. */
export interface TopologyOptions {
  /** Prefix of every netns name; default `psdemo-<random>-`. Keep it short. */
  prefix?: string;
  pods?: PodSpec[];
}

/** frontend, backend and db in namespace "demo". */
export const DEFAULT_PODS: readonly PodSpec[] = [
  { name: "frontend" },
  { name: "backend" },
  { name: "db" },
];

export const BRIDGE_IPV4 = "10.200.0.1";
export const BRIDGE_IPV6 = "fd00:200::1";

/**
 * Turns IPv6 duplicate address detection off so addresses are usable at once. Writes
 * /proc/sys from inside the netns (`tee`, in every Debian root) instead of needing procps.
 */
async function disableDad(netns: string): Promise<void> {
  await runOk(
    [
      "ip",
      "netns",
      "exec",
      netns,
      "tee",
      "/proc/sys/net/ipv6/conf/all/accept_dad",
      "/proc/sys/net/ipv6/conf/default/accept_dad",
    ],
    { stdin: "0\n" },
  );
}

/** True when the link's operational state is UP. */
async function linkIsUp(netns: string, ifname: string): Promise<boolean> {
  const out = await runOk(["ip", "-n", netns, "-j", "link", "show", "dev", ifname]);
  const links = JSON.parse(out) as { operstate?: string }[];
  return links[0]?.operstate === "UP";
}

function hostIfname(pod: string, index: number, taken: Set<string>): string {
  let name = `v${pod}`.slice(0, 15);
  if (taken.has(name)) name = `v${index}${pod}`.slice(0, 15);
  taken.add(name);
  return name;
}

/**
 * Builds the node netns (`<prefix>node`, bridge br0 with 10.200.0.1/24 and fd00:200::1/64)
 * and one netns per pod with eth0 = 10.200.0.<10+i>/24, fd00:200::<10+i>/64 and default
 * routes via the bridge. On failure everything created so far is deleted again.
 */
export async function createDemoTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const prefix = opts.prefix ?? `psdemo-${randomBytes(3).toString("hex")}-`;
  const specs = opts.pods ?? DEFAULT_PODS;
  if (specs.length === 0 || specs.length > 200) {
    throw new DevstackError(`a topology needs 1..200 pods, got ${specs.length}`);
  }
  const seen = new Set<string>();
  for (const s of specs) {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(s.name) || s.name === "node" || seen.has(s.name)) {
      throw new DevstackError(`bad or duplicate pod name "${s.name}"`);
    }
    seen.add(s.name);
  }

  const created: string[] = [];
  const children = new Set<PodProcess>();
  const node: NodeInfo = {
    netns: `${prefix}node`,
    bridge: "br0",
    ipv4: BRIDGE_IPV4,
    ipv6: BRIDGE_IPV6,
  };
  const taken = new Set<string>();
  const pods: Pod[] = specs.map((s, i) => ({
    name: s.name,
    namespace: s.namespace ?? "demo",
    labels: s.labels ?? [`app=${s.name}`],
    netns: `${prefix}${s.name}`,
    ifname: "eth0",
    hostIfname: hostIfname(s.name, i, taken),
    ipv4: `10.200.0.${10 + i}`,
    ipv6: `fd00:200::${(10 + i).toString(16)}`,
  }));

  let destroyed: Promise<void> | undefined;
  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      for (const c of children) {
        c.kill("SIGKILL");
        await c.exited;
      }
      const errors: unknown[] = [];
      for (const ns of created.reverse()) {
        await deleteNetns(ns).catch((err: unknown) => errors.push(err));
      }
      if (errors.length > 0) {
        throw new DevstackError(`could not delete ${errors.length} namespace(s)`, {
          cause: errors[0],
        });
      }
    })();
    return destroyed;
  };

  try {
    const n = node.netns;
    await addNetns(n);
    created.push(n);
    await disableDad(n);
    await runOk(["ip", "-n", n, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]);
    await runOk(["ip", "-n", n, "addr", "add", `${BRIDGE_IPV4}/24`, "dev", "br0"]);
    await runOk(["ip", "-n", n, "addr", "add", `${BRIDGE_IPV6}/64`, "dev", "br0", "nodad"]);
    await runOk(["ip", "-n", n, "link", "set", "br0", "up"]);
    for (const p of pods) {
      await addNetns(p.netns);
      created.push(p.netns);
      await disableDad(p.netns);
      await runOk([
        "ip",
        "-n",
        n,
        "link",
        "add",
        p.hostIfname,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        p.netns,
      ]);
      await runOk(["ip", "-n", n, "link", "set", p.hostIfname, "master", "br0", "up"]);
      await runOk(["ip", "-n", p.netns, "addr", "add", `${p.ipv4}/24`, "dev", "eth0"]);
      await runOk(["ip", "-n", p.netns, "addr", "add", `${p.ipv6}/64`, "dev", "eth0", "nodad"]);
      await runOk(["ip", "-n", p.netns, "link", "set", "eth0", "up"]);
      await runOk(["ip", "-n", p.netns, "route", "add", "default", "via", BRIDGE_IPV4]);
      await runOk(["ip", "-n", p.netns, "-6", "route", "add", "default", "via", BRIDGE_IPV6]);
    }
    // Veth carrier and bridge port state come up asynchronously; wait until every link is UP.
    await waitFor(
      async () => {
        for (const p of pods) if (!(await linkIsUp(p.netns, "eth0"))) return false;
        return linkIsUp(n, "br0");
      },
      { timeoutMs: 5000, what: "topology links up" },
    );
  } catch (err) {
    await destroy().catch((cleanupErr: unknown) => {
      throw new DevstackError("topology setup failed and cleanup failed too", {
        cause: [err, cleanupErr],
      });
    });
    throw new DevstackError("topology setup failed", { cause: err });
  }

  const netnsOf = (pod: string | Pod): string => {
    if (typeof pod !== "string") return pod.netns;
    if (pod === "node") return node.netns;
    return topology.pod(pod).netns;
  };
  const topology: Topology = {
    prefix,
    node,
    pods,
    interfaces: pods.map((p) => `${p.netns}/${p.ifname}`),
    pod(name) {
      const p = pods.find((x) => x.name === name);
      if (!p) throw new DevstackError(`no pod named "${name}"`);
      return p;
    },
    exec: (pod, argv, o) => nsExec(netnsOf(pod), argv, o),
    spawn(pod, argv) {
      const child = Bun.spawn(["ip", "netns", "exec", netnsOf(pod), ...argv], {
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      });
      children.add(child);
      void child.exited.then(() => children.delete(child));
      return child;
    },
    destroy,
  };
  return topology;
}
