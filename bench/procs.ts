/** Child processes of the pipeline bench and the teardown that ends them, also on failure. */

import { resolve } from "node:path";
import { freePort, type SupervisedProcess, Supervisor } from "@periscope/devstack";
import type { FollowQuery, FollowReply, NodeCounts } from "./follow-client.ts";
import {
  BenchTimeoutError,
  type LatencySummary,
  metricSum,
  scrapeMetrics,
  until,
} from "./report.ts";

const ROOT = resolve(import.meta.dir, "..");

/**
 * Undo steps run in reverse order; each runs once even if an earlier one throws.
 * Concurrent run() calls (a signal during teardown) share one pass.
 */
export class Teardown {
  readonly #steps: (() => Promise<unknown> | unknown)[] = [];
  #running: Promise<void> | undefined;

  push(step: () => Promise<unknown> | unknown): void {
    this.#steps.push(step);
  }

  run(): Promise<void> {
    this.#running ??= (async () => {
      for (let step = this.#steps.pop(); step !== undefined; step = this.#steps.pop()) {
        try {
          await step();
        } catch (err) {
          process.stderr.write(`bench teardown step failed: ${String(err)}\n`);
        }
      }
      this.#running = undefined;
    })();
    return this.#running;
  }
}

/** A child process that ended while the bench still needed it. */
export class ChildExitedError extends Error {
  override name = "ChildExitedError";
}

/** Service children (enricher, observer) under one supervisor; logs go to stderr on failure. */
export class ServiceChildren {
  readonly #sup = new Supervisor({ sink: () => {}, stopTimeoutMs: 5000, keepLines: 200 });

  /** Starts `services/<name>/src/main.ts` with `flags`, as the service runs in production. */
  start(name: "enricher" | "observer", flags: readonly string[]): SupervisedProcess {
    return this.#sup.start(name, ["bun", resolve(ROOT, `services/${name}/src/main.ts`), ...flags], {
      cwd: ROOT,
    });
  }

  /** Waits until `http://127.0.0.1:<opsPort>/readyz` answers 2xx; throws if the child exits. */
  async ready(p: SupervisedProcess, opsPort: number, timeoutMs = 20_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (p.exitCode() !== null) {
        throw new ChildExitedError(
          `${p.name} exited (${p.exitCode()}):\n${p.lines().slice(-20).join("\n")}`,
        );
      }
      const ok = await fetch(`http://127.0.0.1:${opsPort}/readyz`, {
        signal: AbortSignal.timeout(1000),
      }).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return;
      if (performance.now() > deadline) throw new BenchTimeoutError(`${p.name} not ready`);
      await Bun.sleep(50);
    }
  }

  /** Output lines a child printed (pino JSON at warn and above), for error reports. */
  lines(name: string): string[] {
    return this.#sup.get(name)?.lines() ?? [];
  }

  stop(): Promise<unknown> {
    return this.#sup.stop();
  }
}

/** The GetFlows follow client child (bench/follow-client.ts) and its IPC requests. */
export class FollowChild {
  readonly #proc: ReturnType<typeof Bun.spawn>;
  readonly #pending = new Map<number, (reply: FollowReply) => void>();
  #nextId = 1;
  #failure: string | undefined;

  /** `args` go after the URL (e.g. `--count`, see bench/follow-client.ts). */
  constructor(observerUrl: string, args: readonly string[] = []) {
    const argv = ["bun", resolve(import.meta.dir, "follow-client.ts"), observerUrl, ...args];
    this.#proc = Bun.spawn(argv, {
      cwd: ROOT,
      stdin: "ignore",
      stdout: "ignore",
      stderr: "inherit",
      serialization: "json",
      ipc: (msg: FollowReply) => {
        if (msg.type === "error") {
          this.#failure = msg.message;
          return;
        }
        const resolve = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        resolve?.(msg);
      },
    });
  }

  get pid(): number {
    return this.#proc.pid;
  }

  async #ask(req: FollowQuery, timeoutMs = 5000): Promise<FollowReply> {
    if (this.#failure !== undefined) throw new ChildExitedError(`follow client: ${this.#failure}`);
    if (this.#proc.exitCode !== null) {
      throw new ChildExitedError(`follow client exited (${this.#proc.exitCode})`);
    }
    const id = this.#nextId++;
    const reply = new Promise<FollowReply>((resolve) => this.#pending.set(id, resolve));
    this.#proc.send({ ...req, id });
    const timeout = Bun.sleep(timeoutMs).then(() => undefined);
    const got = await Promise.race([reply, timeout]);
    this.#pending.delete(id);
    if (got === undefined) throw new BenchTimeoutError(`follow client did not answer ${req.type}`);
    return got;
  }

  /** Counts per node name seen on the stream so far (lost events of the observer under its name). */
  async snapshot(): Promise<Record<string, NodeCounts>> {
    const r = await this.#ask({ type: "snapshot" });
    if (r.type !== "snapshot") throw new Error(`follow client answered ${r.type} to snapshot`);
    return r.nodes;
  }

  /** Latency percentiles (ms) of the flows of `node`. */
  async latency(node: string): Promise<LatencySummary> {
    const r = await this.#ask({ type: "latency", node }, 15_000);
    if (r.type !== "latency") throw new Error(`follow client answered ${r.type} to latency`);
    return r;
  }

  async stop(): Promise<void> {
    if (this.#proc.exitCode !== null || this.#proc.signalCode !== null) return;
    this.#proc.kill("SIGTERM");
    const done = await Promise.race([
      this.#proc.exited.then(() => true),
      Bun.sleep(3000).then(() => false),
    ]);
    if (!done) {
      this.#proc.kill("SIGKILL");
      await this.#proc.exited;
    }
  }
}

/** The enricher, observer and follow client of a bench, started and ready. */
export interface BenchServices {
  readonly children: ServiceChildren;
  readonly enricher: SupervisedProcess;
  readonly observer: SupervisedProcess;
  readonly enricherOps: number;
  readonly observerOps: number;
  readonly follow: FollowChild;
}

/**
 * Starts an enricher and an observer (named `enricherNode` / `observerNode`) on `natsUrl`
 * and a follow client on the observer; returns once the follow client's GetFlows stream
 * is open. Everything is stopped by `teardown`.
 */
export async function startDownstream(
  natsUrl: string,
  teardown: Teardown,
  enricherNode: string,
  observerNode: string,
): Promise<BenchServices> {
  const children = new ServiceChildren();
  teardown.push(() => children.stop());
  const [enricherOps, observerOps, observerPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const common = [`--nats-url=${natsUrl}`, "--log-level=warn"];
  const enricher = children.start("enricher", [
    ...common,
    `--node-name=${enricherNode}`,
    `--ops-addr=127.0.0.1:${enricherOps}`,
  ]);
  const observer = children.start("observer", [
    ...common,
    `--node-name=${observerNode}`,
    `--listen-address=127.0.0.1:${observerPort}`,
    `--ops-addr=127.0.0.1:${observerOps}`,
  ]);
  await Promise.all([children.ready(enricher, enricherOps), children.ready(observer, observerOps)]);
  const follow = new FollowChild(`http://127.0.0.1:${observerPort}`);
  teardown.push(() => follow.stop());
  await until(
    "the follow client's GetFlows stream",
    performance.now(),
    async () =>
      metricSum(await scrapeMetrics(observerOps), "periscope_observer_active_streams") >= 1,
    15_000,
    50,
  );
  return { children, enricher, observer, enricherOps, observerOps, follow };
}
