/**
 * End-to-end harness: a real nats-server, a demo topology of netns pods, and
 * the four services as real child processes, wired like a one-node install.
 * `stop()` tears everything down in reverse order, also after failures.
 */
import { resolve } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  type Bus,
  connectBus,
  freePort,
  type LocalNats,
  openEndpointRegistry,
  startLocalNats,
} from "@periscope/bus";
import { createDemoTopology, Supervisor, type Topology, waitFor } from "@periscope/devstack";
import { Observer } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";

export const ROOT = resolve(import.meta.dir, "..");
export const SERVICES = ["observer", "enricher", "recorder", "collector"] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface Stack {
  readonly nodeName: string;
  readonly natsUrl: string;
  readonly bus: Bus;
  readonly topology: Topology;
  readonly sup: Supervisor;
  readonly observerAddr: string;
  readonly ops: Record<ServiceName, number>;
  readonly client: ReturnType<typeof createClient<typeof Observer>>;
  /** Reads one counter/gauge value (summed over label sets) from a service's /metrics. */
  metric(service: ServiceName, name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

/** A unique netns prefix for one test run (`psct-` is what the leftover check looks for). */
export function testPrefix(): string {
  return `psct-${Math.random().toString(36).slice(2, 7)}-`;
}

export async function startStack(opts: { prefix: string; nodeName: string }): Promise<Stack> {
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

    const topology = await createDemoTopology({ prefix: opts.prefix });
    undo.push(() => topology.destroy());
    const registry = await openEndpointRegistry(bus);
    for (const pod of topology.pods) {
      for (const ip of [pod.ipv4, pod.ipv6]) {
        await registry.put({ ip, namespace: pod.namespace, podName: pod.name, labels: pod.labels });
      }
    }
    registry.close();

    const lines: string[] = [];
    const sup = new Supervisor({ sink: (l) => lines.push(l), stopTimeoutMs: 8000 });
    undo.push(() => sup.stop());
    const ops = {} as Record<ServiceName, number>;
    for (const s of SERVICES) ops[s] = await freePort();
    const observerAddr = `127.0.0.1:${await freePort()}`;
    const env = (s: ServiceName): Record<string, string> => ({
      PERISCOPE_NATS_URL: nats.url,
      PERISCOPE_NODE_NAME: opts.nodeName,
      PERISCOPE_OPS_ADDR: `127.0.0.1:${ops[s]}`,
      PERISCOPE_LOG_LEVEL: "info",
    });
    const extra: Record<ServiceName, Record<string, string>> = {
      observer: { PERISCOPE_LISTEN_ADDR: observerAddr },
      enricher: {},
      recorder: {},
      collector: { PERISCOPE_INTERFACES: topology.interfaces.join(",") },
    };
    for (const s of SERVICES) {
      sup.start(s, ["bun", "run", resolve(ROOT, `services/${s}/src/main.ts`)], {
        env: { ...env(s), ...extra[s] },
        cwd: ROOT,
      });
    }
    for (const s of SERVICES) {
      await waitFor(
        async () => {
          const p = sup.get(s);
          if (p && p.exitCode() !== null) {
            throw new Error(`${s} exited (${p.exitCode()}):\n${p.lines().slice(-20).join("\n")}`);
          }
          const r = await fetch(`http://127.0.0.1:${ops[s]}/readyz`).catch(() => undefined);
          return r?.ok === true;
        },
        { timeoutMs: 30_000, what: `${s} ready` },
      );
    }
    const client = createClient(
      Observer,
      createGrpcTransport({ baseUrl: `http://${observerAddr}` }),
    );
    const metric = async (
      service: ServiceName,
      name: string,
      labels: Record<string, string> = {},
    ): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${ops[service]}/metrics`)).text();
      let sum = 0;
      for (const line of text.split("\n")) {
        const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? ([-+\d.eE]+|NaN)$/.exec(line);
        if (!m || m[1] !== name) continue;
        const ls = m[2] ?? "";
        if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`)))
          sum += Number(m[3]);
      }
      return sum;
    };
    return {
      nodeName: opts.nodeName,
      natsUrl: nats.url,
      bus,
      topology,
      sup,
      observerAddr,
      ops,
      client,
      metric,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
