/**
 * End-to-end harness: a real nats-server, a demo topology of netns pods, and
 * the services as real child processes, wired like an install: one observer
 * and recorder, N enricher replicas, and one collector per simulated node
 * (each attached to its own pods). `stop()` tears everything down in reverse
 * order, also after failures.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type Bus, connectBus, openEndpointRegistry } from "@periscope/bus";
import {
  createDemoTopology,
  freePort,
  type LocalNats,
  type PodSpec,
  Supervisor,
  startLocalNats,
  type Topology,
  waitFor,
} from "@periscope/devstack";
import { Observer } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";

export const ROOT = resolve(import.meta.dir, "..");
export type ServiceKind = "observer" | "enricher" | "recorder" | "collector";

/** One simulated node: a collector attached to these pods' eth0, or to `interfaces` as given. */
export interface NodeSpec {
  name: string;
  pods?: string[];
  /** PERISCOPE_INTERFACES as a user would write it; overrides `pods`. */
  interfaces?: string;
}

export interface StackOptions {
  prefix: string;
  pods?: PodSpec[];
  nodes: NodeSpec[];
  /** Enricher replicas in the queue group (default 1). */
  enrichers?: number;
  /** Extra environment per service kind (e.g. PERISCOPE_MAX_FLOWS for the observer). */
  env?: Partial<Record<ServiceKind, Record<string, string>>>;
}

export interface Stack {
  readonly natsUrl: string;
  /** The broker (its pid, port and store dir, for fault tests). */
  readonly nats: LocalNats;
  readonly bus: Bus;
  readonly topology: Topology;
  readonly sup: Supervisor;
  readonly observerAddr: string;
  /** The recorder's recorder.Recorder API (`host:port`) and the directory it writes pcaps to. */
  readonly recorderAddr: string;
  readonly recordingsDir: string;
  /** Ops (metrics/health) port by process name: observer, recorder, enricher-<i>, collector-<node>. */
  readonly ops: Record<string, number>;
  readonly client: ReturnType<typeof createClient<typeof Observer>>;
  /** Sums one counter/gauge (over label sets matching `labels`) from a process's /metrics. */
  metric(process: string, name: string, labels?: Record<string, string>): Promise<number>;
  /** Starts a service process again (same argv and environment, plus `env`) after it exited. */
  restart(process: string, env?: Record<string, string>): void;
  stop(): Promise<void>;
}

/** A unique netns prefix for one test run (`psct-` is what the leftover check looks for). */
export function testPrefix(): string {
  return `psct-${Math.random().toString(36).slice(2, 7)}-`;
}

/** Parses Prometheus text format and sums the samples of `name` whose labels include `labels`. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? ([-+\d.eE]+|NaN)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const log = createLogger("e2e", "warn");
  const undo: Array<() => Promise<unknown>> = [];
  const stop = async (): Promise<void> => {
    for (const fn of undo.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error("e2e teardown step failed:", err);
      }
    }
    undo.length = 0;
  };
  try {
    const nats: LocalNats = await startLocalNats({ log });
    undo.push(() => nats.stop());
    const bus = await connectBus({ url: nats.url, name: "e2e", log });
    undo.push(() => bus.close());

    const topology = await createDemoTopology({
      prefix: opts.prefix,
      ...(opts.pods ? { pods: opts.pods } : {}),
    });
    undo.push(() => topology.destroy());
    const registry = await openEndpointRegistry(bus);
    for (const pod of topology.pods) {
      for (const ip of [pod.ipv4, pod.ipv6]) {
        await registry.put({ ip, namespace: pod.namespace, podName: pod.name, labels: pod.labels });
      }
    }
    await registry.close();

    // The recorder's API port and pcap directory (removed after the services stop).
    const recorderAddr = `127.0.0.1:${await freePort()}`;
    const recordingsDir = mkdtempSync(join(tmpdir(), "periscope-rec-"));
    undo.push(async () => rmSync(recordingsDir, { recursive: true, force: true }));
    const lines: string[] = [];
    const sup = new Supervisor({ sink: (l) => lines.push(l), stopTimeoutMs: 8000 });
    undo.push(() => sup.stop());
    const observerAddr = `127.0.0.1:${await freePort()}`;
    const procs: Array<{ name: string; kind: ServiceKind; env: Record<string, string> }> = [
      {
        name: "observer",
        kind: "observer",
        env: { PERISCOPE_LISTEN_ADDR: observerAddr, PERISCOPE_RECORDER_ADDR: recorderAddr },
      },
      {
        name: "recorder",
        kind: "recorder",
        env: {
          PERISCOPE_RECORDER_LISTEN_ADDR: recorderAddr,
          PERISCOPE_RECORDER_STORAGE_DIR: recordingsDir,
        },
      },
    ];
    for (let i = 0; i < (opts.enrichers ?? 1); i++) {
      procs.push({ name: `enricher-${i}`, kind: "enricher", env: {} });
    }
    for (const node of opts.nodes) {
      const interfaces =
        node.interfaces ?? (node.pods ?? []).map((p) => `${topology.pod(p).netns}/eth0`).join(",");
      procs.push({
        name: `collector-${node.name}`,
        kind: "collector",
        env: { PERISCOPE_NODE_NAME: node.name, PERISCOPE_INTERFACES: interfaces },
      });
    }
    const ops: Record<string, number> = {};
    const starts = new Map<string, (extra?: Record<string, string>) => void>();
    for (const p of procs) {
      ops[p.name] = await freePort();
      const argv = ["bun", "run", resolve(ROOT, `services/${p.kind}/src/main.ts`)];
      const env = {
        PERISCOPE_NATS_URL: nats.url,
        PERISCOPE_NODE_NAME: opts.nodes[0]?.name ?? "e2e",
        PERISCOPE_OPS_ADDR: `127.0.0.1:${ops[p.name]}`,
        PERISCOPE_LOG_LEVEL: "info",
        // Simulated nodes share one kernel: each reports only its own pods' drops.
        ...(p.kind === "collector" ? { PERISCOPE_DROPS: "watched" } : {}),
        // The suites count every packet; aggregation tests set their level in opts.env.
        ...(p.kind === "collector" ? { PERISCOPE_AGGREGATION: "none" } : {}),
        // The suites expect default-length captures; L7 suites set their rules in opts.env.
        ...(p.kind === "collector" ? { PERISCOPE_CAPTURE_RULES: "none" } : {}),
        ...opts.env?.[p.kind],
        ...p.env,
      };
      starts.set(p.name, (extra) =>
        sup.start(p.name, argv, { env: { ...env, ...extra }, cwd: ROOT }),
      );
      starts.get(p.name)?.();
    }
    const restart = (name: string, extra?: Record<string, string>): void => {
      const start = starts.get(name);
      if (start === undefined) throw new Error(`no process named ${name}`);
      start(extra);
    };
    for (const p of procs) {
      await waitFor(
        async () => {
          const sp = sup.get(p.name);
          if (sp && sp.exitCode() !== null) {
            throw new Error(
              `${p.name} exited (${sp.exitCode()}):\n${sp.lines().slice(-20).join("\n")}`,
            );
          }
          const r = await fetch(`http://127.0.0.1:${ops[p.name]}/readyz`).catch(() => undefined);
          return r?.ok === true;
        },
        { timeoutMs: 30_000, what: `${p.name} ready` },
      );
    }
    const client = createClient(
      Observer,
      createGrpcTransport({ baseUrl: `http://${observerAddr}` }),
    );
    const metric = async (
      process: string,
      name: string,
      labels: Record<string, string> = {},
    ): Promise<number> => {
      const port = ops[process];
      if (port === undefined) throw new Error(`no process named ${process}`);
      return sumMetric(
        await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
        name,
        labels,
      );
    };
    return {
      natsUrl: nats.url,
      nats,
      bus,
      topology,
      sup,
      observerAddr,
      recorderAddr,
      recordingsDir,
      ops,
      client,
      metric,
      restart,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
