/**
 * The run command: a local nats-server (JetStream, owned and restarted here unless
 * --nats-url is given), the collector, enricher, observer and recorder under a
 * supervisor that restarts any of them that dies (with backoff, announced on the
 * terminal), on a demo topology of netns "pods" (default) or on real interfaces
 * (--interfaces / PERISCOPE_INTERFACES), then streams live flows like
 * `hubble observe -f`. Ctrl-C stops everything and removes what it created.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { connectBus, openEndpointRegistry, reportExited } from "@periscope/bus";
import {
  cleanupStale,
  createDemoTopology,
  type DemoTraffic,
  demoTraffic,
  Supervisor,
  type SupervisorEvent,
  type Topology,
  WaitAbortedError,
  waitFor,
} from "@periscope/devstack";
import { createLogger } from "@periscope/telemetry";
import { parseUpArgs, type UpOptions, UsageError } from "./up/args.ts";
import { brokerAnswers, type OwnedBroker, ownBroker } from "./up/broker.ts";

const ROOT = resolve(import.meta.dir, "..");
/** Start order; stop goes the other way (collector first: it detaches from the kernel). */
const SERVICES = ["observer", "enricher", "recorder", "collector"] as const;
type ServiceName = (typeof SERVICES)[number];
const isService = (name: string): name is ServiceName =>
  (SERVICES as readonly string[]).includes(name);

let opts: UpOptions;
try {
  opts = parseUpArgs(process.argv.slice(2), process.env, resolve(ROOT, ".periscope"));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  if (err.message) console.error(`scripts/up.sh: ${err.message}`);
  console.error(err.usage);
  process.exit(2);
}

const log = createLogger("up", "warn");
const logDir = resolve(opts.stateDir, "logs");
mkdirSync(logDir, { recursive: true });
const logFile = resolve(logDir, "services.log");
const node = hostname();
/** A line for the person at the terminal, also kept in the log file. */
const say = (line: string): void => {
  console.error(line);
  appendFileSync(logFile, `[up] ${line}\n`);
};
const opsPort = (name: ServiceName): number => opts.opsPortBase + SERVICES.indexOf(name);

let broker: OwnedBroker | undefined;
let busNc: Parameters<typeof reportExited>[0] | undefined;
const onEvent = (ev: SupervisorEvent): void => {
  if (ev.kind === "restart") {
    say(`${ev.name} restarted (pid ${ev.pid})`);
  } else if (isService(ev.name) && busNc) {
    // Watchers need not wait for the heartbeats to go stale: this one is gone.
    reportExited(busNc, { service: ev.name, node, pid: ev.pid });
  } else if (ev.name === "observe" && ev.code === 0) {
    say("the services keep running; Ctrl-C stops everything");
  }
};
const sup = new Supervisor({ logFile, stopTimeoutMs: 15_000, notice: say, onEvent });

let topology: Topology | undefined;
let traffic: DemoTraffic | undefined;
let stopping: Promise<void> | undefined;
let closeBus: (() => Promise<void>) | undefined;
/** Aborted once a stop is asked for: startup then ends at its next step. */
const stopRequested = new AbortController();
let startup: Promise<void> = Promise.resolve();

/**
 * Stops everything once. After a SIGINT (a terminal's Ctrl-C reaches every process of
 * the group) the children are already stopping: wait for them instead of signalling
 * again. Further signals never cut the stop short.
 */
async function shutdown(code: number, signal?: NodeJS.Signals): Promise<never> {
  if (stopping) {
    if (signal) say(`${signal} while stopping; finishing the cleanup first`);
  } else {
    stopRequested.abort();
    sup.releaseAll(); // children exiting on the terminal's Ctrl-C are not restarted
    stopping = (async () => {
      say("\nstopping Periscope…");
      await startup.catch(() => undefined); // what it created is known once it has returned
      await traffic?.stop().catch((err) => log.error({ err }, "stopping demo traffic"));
      await sup.stop(15_000, { alreadySignalled: signal === "SIGINT", settleMs: 5000 });
      await topology?.destroy().catch((err) => log.error({ err }, "removing demo topology"));
      await closeBus?.();
      await broker?.stop();
      const restarts = [...SERVICES, "observe"]
        .map((n) => [n, sup.restarts(n)] as const)
        .filter(([, r]) => r > 0);
      if (broker && broker.restarts() > 0) restarts.push(["nats-server", broker.restarts()]);
      if (restarts.length > 0) say(`restarts: ${restarts.map(([n, r]) => `${n} ${r}`).join(", ")}`);
      say(`stopped; service logs in ${logFile}`);
    })();
  }
  await stopping;
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0, "SIGINT"));
process.on("SIGTERM", () => void shutdown(0, "SIGTERM"));

/** Everything up to the flow stream; returns early when a stop is asked for. */
async function startAll(): Promise<void> {
  const stop = stopRequested.signal;
  await cleanupStale(opts.demoPrefix);
  let natsUrl = opts.natsUrl;
  if (natsUrl === undefined) {
    if (await brokerAnswers(opts.natsPort)) {
      natsUrl = `nats://127.0.0.1:${opts.natsPort}`;
      say(`using the nats-server already answering on ${natsUrl} (not owned: not restarted here)`);
    } else {
      broker = await ownBroker({
        port: opts.natsPort,
        storeDir: resolve(opts.stateDir, "nats"),
        notice: say,
        log,
      });
      natsUrl = broker.url;
    }
  }
  const bus = await connectBus({
    url: natsUrl,
    name: "periscope-up",
    firstConnectTimeoutMs: 10_000,
    signal: stop,
    log,
  });
  busNc = bus.nc;
  closeBus = () => bus.close();

  let interfaces = opts.interfaces;
  if (stop.aborted) return;
  if (!interfaces) {
    topology = await createDemoTopology({ prefix: opts.demoPrefix });
    const registry = await openEndpointRegistry(bus);
    for (const pod of topology.pods) {
      for (const ip of [pod.ipv4, pod.ipv6]) {
        await registry.put({ ip, namespace: pod.namespace, podName: pod.name, labels: pod.labels });
      }
    }
    registry.close();
    interfaces = topology.interfaces.join(",");
    say(
      `demo topology: ${topology.pods.map((p) => `${p.namespace}/${p.name} ${p.ipv4}`).join(", ")}`,
    );
  }

  const extraEnv: Record<ServiceName, Record<string, string>> = {
    observer: { PERISCOPE_LISTEN_ADDR: opts.observerAddr },
    enricher: {},
    recorder: {},
    collector: { PERISCOPE_INTERFACES: interfaces },
  };
  if (stop.aborted) return;
  for (const name of SERVICES) {
    sup.start(name, ["bun", "run", resolve(ROOT, `services/${name}/src/main.ts`)], {
      env: {
        PERISCOPE_NATS_URL: natsUrl,
        PERISCOPE_NODE_NAME: node,
        PERISCOPE_LOG_LEVEL: "info",
        PERISCOPE_OPS_ADDR: `127.0.0.1:${opsPort(name)}`,
        ...extraEnv[name],
      },
      cwd: ROOT,
      restart: {},
    });
  }
  for (const name of SERVICES) {
    await waitFor(
      async () => {
        if (stop.aborted) throw new WaitAbortedError("stopping");
        if (!sup.alive(name)) {
          const lines = sup.get(name)?.lines().slice(-15).join("\n") ?? "";
          throw new WaitAbortedError(`${name} exited and is not restarted:\n${lines}`);
        }
        const ready = await fetch(`http://127.0.0.1:${opsPort(name)}/readyz`).catch(
          () => undefined,
        );
        return ready?.ok === true;
      },
      { timeoutMs: 30_000, what: `${name} ready on :${opsPort(name)}` },
    );
  }
  say(`watching ${interfaces}; observer on ${opts.observerAddr}; Ctrl-C to stop`);
  say(`web UI: ${uiUrl(opts.observerAddr)}`);

  if (topology) traffic = await demoTraffic(topology);
  if (stop.aborted) return;

  // The terminal stream: it reconnects by itself when the observer restarts; if it dies,
  // it is restarted like the services; once it ends normally the services keep running.
  sup.start(
    "observe",
    [
      "bun",
      "run",
      resolve(ROOT, "cli/src/main.ts"),
      "observe",
      "--server",
      opts.observerAddr,
      ...opts.observeArgs,
    ],
    { cwd: ROOT, output: "inherit", restart: { restartOnSuccess: false } },
  );
}

startup = startAll();
try {
  await startup;
  // Runs until a signal: shutdown() exits the process.
  setInterval(() => {}, 1 << 30);
} catch (err) {
  if (!stopRequested.signal.aborted) {
    say(`periscope up failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  await shutdown(1);
}

/** The web UI's URL for the observer's listen address (served on the same port). */
function uiUrl(addr: string): string {
  const m = /^(.*):(\d+)$/.exec(addr);
  const host = m?.[1] ?? addr;
  const port = m?.[2] ?? "";
  const shown = host === "" || host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host;
  return `http://${shown}${port ? `:${port}` : ""}/`;
}
