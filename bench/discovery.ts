/**
 * discovery-*: how fast the collector attaches to devices that appear, and what watching
 * 200 namespaces costs while nothing changes. Three ways to learn about devices are
 * compared on the same 200 namespaces (veth `eth0` in each):
 *
 * - netlink (what the collector does): one rtnetlink socket per namespace in one epoll
 *   set, waited on by a worker thread; measured end to end in a real collector (attach
 *   latency from `ip link add`, CPU while idle with 200 attached) and for the
 *   notification alone (LinkWatcher in this process).
 * - ip-monitor: one `ip -n <ns> monitor link` child per namespace (latency to its line,
 *   CPU and memory of the 200 children while idle).
 * - poll: one `ip -n <ns> -j link show` per namespace per pass (the former discovery):
 *   wall time and CPU of one pass.
 */
import { readFileSync } from "node:fs";
import { LinkWatcher } from "@periscope/bpf";
import { type LocalNats, runOk } from "@periscope/devstack";
import { ChurnTopology, CollectorProcess, podNetns } from "../tests/churn.ts";
import type { Teardown } from "./procs.ts";
import { emit, quantile, until } from "./report.ts";

const BENCH = "discovery";
const PODS = 200;
/** Namespaces that get an extra device for the notification-only latencies. */
const PROBES = 50;
const IDLE_MS = 10_000;
const PREFIX = "psct-bdisc-";

/** CPU seconds (user + system) of a process, from /proc/<pid>/stat (USER_HZ 100). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Proportional set size of a process in MiB (shared pages split among their users). */
function pssMiB(pid: number): number {
  const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

/** CPU% (of one core) the processes used over `ms`. */
async function idleCpuPct(pids: readonly number[], ms: number): Promise<number> {
  const sum = (): number => pids.reduce((s, p) => s + cpuSeconds(p), 0);
  const before = sum();
  await Bun.sleep(ms);
  return ((sum() - before) / (ms / 1000)) * 100;
}

function emitLatency(approach: string, what: string, ms: number[]): void {
  const sorted = [...ms].sort((a, b) => a - b);
  emit(BENCH, `${approach}-${what}-p50`, quantile(sorted, 0.5), "ms");
  emit(BENCH, `${approach}-${what}-p99`, quantile(sorted, 0.99), "ms");
  emit(BENCH, `${approach}-${what}-max`, sorted[sorted.length - 1] ?? Number.NaN, "ms");
}

/** Wall time of each `ip link add` run by {@link addProbe}, ms (part of every latency). */
const ipLinkAddMs: number[] = [];

/** Adds probe device `x<round>` in namespace `i`; returns performance.now() before. */
async function addProbe(i: number, round: number): Promise<number> {
  const t = performance.now();
  await runOk([
    ...["ip", "-n", podNetns(PREFIX, i), "link", "add", `x${round}a`, "type", "veth"],
    ...["peer", "name", `x${round}b`],
  ]);
  ipLinkAddMs.push(performance.now() - t);
  return t;
}

async function collectorPart(nats: LocalNats, topo: ChurnTopology, teardown: Teardown) {
  const c = new CollectorProcess({
    natsUrl: nats.url,
    node: "psct-bdisc-node",
    interfaces: `${PREFIX}p*/eth0`,
  });
  teardown.push(() => c.stop());
  await c.ready();
  await Bun.sleep(1000);
  emit(BENCH, "collector-idle-cpu-0-devices", await idleCpuPct([c.pid], IDLE_MS), "%");
  const createdAt: number[] = [];
  for (let i = 0; i < PODS; i++) createdAt.push(await topo.addPod(i));
  const name = (i: number): string => `${podNetns(PREFIX, i)}/eth0`;
  await until("all devices attached", performance.now(), () =>
    createdAt.every((_, i) => c.attachedAt.has(name(i))),
  );
  emitLatency(
    "netlink",
    "attach",
    createdAt.map((t, i) => (c.attachedAt.get(name(i)) ?? 0) - t),
  );
  await Bun.sleep(1000); // registry writes settle
  emit(BENCH, "collector-idle-cpu-200-devices", await idleCpuPct([c.pid], IDLE_MS), "%");
  emit(BENCH, "collector-pss-200-devices", pssMiB(c.pid), "MiB");
  await c.stop();
}

async function linkWatcherPart(): Promise<void> {
  const seen = new Map<string, number>();
  const w = new LinkWatcher({
    onChanges: (netns, changes) => {
      for (const ch of changes) seen.set(`${netns}/${ch.ifname}`, performance.now());
    },
    onOverrun: () => {},
    onError: (err) => process.stderr.write(`bench: link watcher: ${String(err)}\n`),
  });
  try {
    for (let i = 0; i < PODS; i++) w.watch(podNetns(PREFIX, i));
    const ms: number[] = [];
    for (let i = 0; i < PROBES; i++) {
      const t = await addProbe(i, 0);
      const key = `${podNetns(PREFIX, i)}/x0a`;
      await until("netlink notification", t, () => seen.has(key));
      ms.push((seen.get(key) ?? 0) - t);
    }
    emitLatency("netlink", "notify", ms);
    const before = process.cpuUsage();
    await Bun.sleep(IDLE_MS);
    const used = process.cpuUsage(before);
    emit(
      BENCH,
      "netlink-watcher-idle-cpu",
      ((used.user + used.system) / 1e6 / (IDLE_MS / 1000)) * 100,
      "%",
    );
  } finally {
    await w.close();
  }
}

async function ipMonitorPart(teardown: Teardown): Promise<void> {
  const seen = new Map<string, number>();
  const children: ReturnType<typeof Bun.spawn>[] = [];
  const stopAll = (): void => {
    for (const c of children) c.kill("SIGKILL");
  };
  teardown.push(stopAll);
  const spawnStart = performance.now();
  for (let i = 0; i < PODS; i++) {
    const ns = podNetns(PREFIX, i);
    const child = Bun.spawn(["ip", "-n", ns, "monitor", "link"], {
      stdout: "pipe",
      stderr: "ignore",
    });
    children.push(child);
    void (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stdout as ReadableStream<Uint8Array>) {
        const now = performance.now();
        for (const m of dec.decode(chunk).matchAll(/\d+: (x\d+a)[@:]/g))
          seen.set(`${ns}/${m[1]}`, now);
      }
    })();
  }
  emit(BENCH, "ip-monitor-spawn-200", performance.now() - spawnStart, "ms");
  await Bun.sleep(500); // every child subscribed
  const ms: number[] = [];
  for (let i = 0; i < PROBES; i++) {
    const t = await addProbe(i, 1);
    const key = `${podNetns(PREFIX, i)}/x1a`;
    await until("ip monitor line", t, () => seen.has(key));
    ms.push((seen.get(key) ?? 0) - t);
  }
  emitLatency("ip-monitor", "notify", ms);
  const pids = children.map((c) => c.pid);
  emit(BENCH, "ip-monitor-children-idle-cpu", await idleCpuPct(pids, IDLE_MS), "%");
  emit(
    BENCH,
    "ip-monitor-children-pss",
    pids.reduce((s, p) => s + pssMiB(p), 0),
    "MiB",
  );
  stopAll();
}

async function pollPart(): Promise<void> {
  const self = (): number => {
    const f = readFileSync("/proc/self/stat", "utf8");
    const x = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return (Number(x[11]) + Number(x[12]) + Number(x[13]) + Number(x[14])) / 100;
  };
  const cpu0 = self();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: PODS }, (_, i) =>
      runOk(["ip", "-n", podNetns(PREFIX, i), "-j", "link", "show"]),
    ),
  );
  emit(BENCH, "poll-pass-200-wall", performance.now() - t0, "ms");
  emit(BENCH, "poll-pass-200-cpu", (self() - cpu0) * 1000, "ms");
}

/** Runs the discovery comparison on 200 namespaces it creates and removes again. */
export async function runDiscoveryBench(nats: LocalNats, teardown: Teardown): Promise<void> {
  const topo = await ChurnTopology.create(PREFIX);
  teardown.push(() => topo.destroy());
  await collectorPart(nats, topo, teardown);
  await linkWatcherPart();
  await ipMonitorPart(teardown);
  emitLatency("ip-link-add", "wall", ipLinkAddMs);
  await pollPart();
}
