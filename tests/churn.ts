/**
 * Namespace churn for the discovery test and bench: a hub namespace and many "pod"
 * namespaces, each joined to the hub by a veth pair (`eth0` inside the pod, `h<i>` in
 * the hub), and a collector child process whose JSON log lines tell when each device
 * was attached and detached.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { cleanupStale, deleteNetns, listNetns, run, runOk, waitFor } from "@periscope/devstack";

const ROOT = resolve(import.meta.dir, "..");

/** Name of pod namespace `i`. */
export function podNetns(prefix: string, i: number): string {
  return `${prefix}p${i}`;
}

/** IPv4 of the hub (.1) and pod (.2) ends of pair `i` (a /30 in 10.236.0.0/16). */
export function pairAddrs(i: number): { hub: string; pod: string } {
  const base = i * 4;
  const net = `10.236.${base >> 8}`;
  return { hub: `${net}.${(base & 0xff) + 1}`, pod: `${net}.${(base & 0xff) + 2}` };
}

/** The hub and the pod namespaces of one churn run. */
export class ChurnTopology {
  readonly prefix: string;
  readonly hub: string;

  private constructor(prefix: string) {
    this.prefix = prefix;
    this.hub = `${prefix}hub`;
  }

  /** Removes leftovers of an earlier run with this prefix, then creates the hub. */
  static async create(prefix: string): Promise<ChurnTopology> {
    await cleanupStale(prefix);
    const t = new ChurnTopology(prefix);
    await runOk(["ip", "netns", "add", t.hub]);
    await runOk(["ip", "-n", t.hub, "link", "set", "lo", "up"]);
    return t;
  }

  /** Creates pod namespace `i`; returns performance.now() just before its eth0 is created. */
  async addPod(i: number, opts: { addresses?: boolean } = {}): Promise<number> {
    const ns = podNetns(this.prefix, i);
    await runOk(["ip", "netns", "add", ns]);
    const t = performance.now();
    await runOk([
      ...["ip", "-n", this.hub, "link", "add", `h${i}`, "type", "veth"],
      ...["peer", "name", "eth0", "netns", ns],
    ]);
    if (opts.addresses === true) {
      const a = pairAddrs(i);
      await runOk(["ip", "-n", this.hub, "addr", "add", `${a.hub}/30`, "dev", `h${i}`]);
      await runOk(["ip", "-n", this.hub, "link", "set", `h${i}`, "up"]);
      await runOk(["ip", "-n", ns, "addr", "add", `${a.pod}/30`, "dev", "eth0"]);
      await runOk(["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }
    return t;
  }

  /** Deletes pod namespace `i`; returns performance.now() just before. */
  async deletePod(i: number): Promise<number> {
    const t = performance.now();
    await runOk(["ip", "netns", "delete", podNetns(this.prefix, i)]);
    return t;
  }

  /** Namespaces with this prefix that still exist. */
  async leftovers(): Promise<string[]> {
    return (await listNetns()).filter((n) => n.startsWith(this.prefix));
  }

  /** Deletes every pod namespace and the hub. */
  async destroy(): Promise<void> {
    await cleanupStale(this.prefix);
    await deleteNetns(this.hub);
  }
}

/** Environment for a collector child process. */
export interface CollectorEnv {
  readonly natsUrl: string;
  readonly node: string;
  readonly interfaces: string;
}

/**
 * A collector child process (`services/collector/src/main.ts`). Reads its JSON log and
 * keeps, per `[<netns>/]<ifname>`, when (performance.now()) it logged "attached" and
 * "detached".
 */
export class CollectorProcess {
  readonly attachedAt = new Map<string, number>();
  readonly detachedAt = new Map<string, number>();
  readonly #proc: ReturnType<typeof Bun.spawn>;
  #started = false;
  readonly #tail: string[] = [];

  constructor(env: CollectorEnv, extra: Record<string, string> = {}) {
    this.#proc = Bun.spawn(["bun", "run", resolve(ROOT, "services/collector/src/main.ts")], {
      cwd: ROOT,
      env: {
        ...process.env,
        PERISCOPE_NATS_URL: env.natsUrl,
        PERISCOPE_NODE_NAME: env.node,
        PERISCOPE_INTERFACES: env.interfaces,
        PERISCOPE_OPS_ADDR: "127.0.0.1:0",
        PERISCOPE_LOG_LEVEL: "info",
        ...extra,
      },
      stdout: "pipe",
      stderr: "pipe",
    });
    void this.#read(this.#proc.stdout as ReadableStream<Uint8Array>);
    void this.#read(this.#proc.stderr as ReadableStream<Uint8Array>);
  }

  get pid(): number {
    return this.#proc.pid;
  }

  /** Devices attached now according to the log. */
  attached(): Set<string> {
    const out = new Set<string>();
    for (const [name, t] of this.attachedAt) {
      if ((this.detachedAt.get(name) ?? -1) < t) out.add(name);
    }
    return out;
  }

  /** Waits for "collector started"; throws with the log tail if it exits first. */
  async ready(timeoutMs = 20_000): Promise<void> {
    await waitFor(
      () => {
        if (this.#proc.exitCode !== null) {
          throw new Error(`collector exited ${this.#proc.exitCode}:\n${this.#tail.join("\n")}`);
        }
        return this.#started;
      },
      { timeoutMs, intervalMs: 20, what: "collector started" },
    );
  }

  /** User + system CPU seconds of the process so far (/proc/<pid>/stat, USER_HZ 100). */
  cpuSeconds(): number {
    const stat = readFileSync(`/proc/${this.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  }

  /** SIGKILL and wait for the exit (no cleanup by the collector). */
  async kill9(): Promise<void> {
    this.#proc.kill("SIGKILL");
    await this.#proc.exited;
  }

  /** SIGTERM (graceful: detaches everything), SIGKILL after 10 s. */
  async stop(): Promise<void> {
    if (this.#proc.exitCode !== null) return;
    this.#proc.kill("SIGTERM");
    const t = setTimeout(() => this.#proc.kill("SIGKILL"), 10_000);
    await this.#proc.exited;
    clearTimeout(t);
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      const now = performance.now();
      buf += decoder.decode(chunk, { stream: true });
      let nl = buf.indexOf("\n");
      while (nl !== -1) {
        this.#line(buf.slice(0, nl), now);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
      }
    }
  }

  #line(line: string, now: number): void {
    this.#tail.push(line);
    if (this.#tail.length > 40) this.#tail.shift();
    let rec: { msg?: unknown; interface?: unknown };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      return; // not a log line (bun's own output)
    }
    if (rec.msg === "collector started") this.#started = true;
    if (typeof rec.interface !== "string") return;
    if (rec.msg === "attached") this.attachedAt.set(rec.interface, now);
    else if (rec.msg === "detached") this.detachedAt.set(rec.interface, now);
  }
}

/** Percentile `p` (0..100) of `xs`, nearest rank. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return (
    sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
  );
}

/** tc filters (ingress, egress) on `eth0` of a namespace, counted with `tc -j filter show`. */
export async function filterCounts(netns: string): Promise<{ ingress: number; egress: number }> {
  const count = async (hook: string): Promise<number> => {
    const r = await run(["tc", "-n", netns, "-j", "filter", "show", "dev", "eth0", hook]);
    const out = r.stdout.trim();
    const filters = (out === "" ? [] : JSON.parse(out)) as { options?: { prog?: unknown } }[];
    return filters.filter((f) => f.options?.prog !== undefined).length;
  };
  return { ingress: await count("ingress"), egress: await count("egress") };
}
