/**
 * Runs Periscope on this machine: nats-server (local, JetStream), collector,
 * enricher, observer and recorder, on a demo topology of netns "pods" (default)
 * or on real interfaces (--interfaces / PERISCOPE_INTERFACES), then streams
 * live flows like `hubble observe -f`. Ctrl-C stops and removes everything.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { canConnect, connectBus, openEndpointRegistry, startLocalNats } from "@periscope/bus";
import {
  cleanupStale,
  createDemoTopology,
  type DemoTraffic,
  demoTraffic,
  Supervisor,
  type Topology,
  waitFor,
} from "@periscope/devstack";
import { createLogger } from "@periscope/telemetry";

const ROOT = resolve(import.meta.dir, "..");
const DEMO_PREFIX = "psc-";
const OPS = { collector: 9401, enricher: 9402, observer: 9403, recorder: 9404 } as const;

interface UpOptions {
  interfaces: string | undefined;
  natsUrl: string | undefined;
  observerAddr: string;
  observeArgs: string[];
}

function usage(): never {
  console.error(`usage: scripts/up.sh [--interfaces LIST] [--nats-url URL] [--listen-address HOST:PORT] [-- observe flags…]
  --interfaces LIST   comma list of [<netns>/]<ifname> to watch instead of the demo topology
  --nats-url URL      use this NATS server instead of starting a local one
  --listen-address    observer gRPC address (default localhost:4245)
  after --, flags for 'periscope observe' (default: -f)`);
  process.exit(2);
}

function parseArgs(argv: string[]): UpOptions {
  const opts: UpOptions = {
    interfaces: process.env.PERISCOPE_INTERFACES || undefined,
    natsUrl: process.env.PERISCOPE_NATS_URL || undefined,
    observerAddr: "localhost:4245",
    observeArgs: ["-f"],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => argv[++i] ?? usage();
    if (a === "--interfaces") opts.interfaces = next();
    else if (a === "--nats-url") opts.natsUrl = next();
    else if (a === "--listen-address") opts.observerAddr = next();
    else if (a === "--") {
      opts.observeArgs = argv.slice(i + 1);
      break;
    } else usage();
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const log = createLogger("up", "warn");
const logDir = resolve(ROOT, ".periscope/logs");
mkdirSync(logDir, { recursive: true });
const sup = new Supervisor({ logFile: resolve(logDir, "services.log"), stopTimeoutMs: 8000 });

let topology: Topology | undefined;
let traffic: DemoTraffic | undefined;
let stopping: Promise<void> | undefined;

await cleanupStale(DEMO_PREFIX);
// Services only connect; the broker is started here, once, when none is given or answering.
const localNats =
  opts.natsUrl === undefined && !(await canConnect("127.0.0.1", 4222))
    ? await startLocalNats({ port: 4222, storeDir: resolve(ROOT, ".periscope/nats"), log })
    : undefined;
const bus = await connectBus({
  url: opts.natsUrl,
  name: "periscope-up",
  firstConnectTimeoutMs: 10_000,
  log,
});
const natsUrl = bus.url;

async function shutdown(code: number): Promise<void> {
  stopping ??= (async () => {
    console.error("\nstopping Periscope…");
    await traffic?.stop().catch((err) => log.error({ err }, "stopping demo traffic"));
    await sup.stop();
    await topology?.destroy().catch((err) => log.error({ err }, "removing demo topology"));
    await bus.close();
    await localNats?.stop();
    console.error(`stopped; service logs in ${logDir}/services.log`);
  })();
  await stopping;
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

try {
  let interfaces = opts.interfaces;
  if (!interfaces) {
    topology = await createDemoTopology({ prefix: DEMO_PREFIX });
    const registry = await openEndpointRegistry(bus);
    for (const pod of topology.pods) {
      for (const ip of [pod.ipv4, pod.ipv6]) {
        await registry.put({ ip, namespace: pod.namespace, podName: pod.name, labels: pod.labels });
      }
    }
    registry.close();
    interfaces = topology.interfaces.join(",");
    console.error(
      `demo topology: ${topology.pods.map((p) => `${p.namespace}/${p.name} ${p.ipv4}`).join(", ")}`,
    );
  }

  const common = { PERISCOPE_NATS_URL: natsUrl, PERISCOPE_LOG_LEVEL: "info" };
  const service = (name: keyof typeof OPS, env: Record<string, string> = {}): void => {
    sup.start(name, ["bun", "run", resolve(ROOT, `services/${name}/src/main.ts`)], {
      env: { ...common, PERISCOPE_OPS_ADDR: `127.0.0.1:${OPS[name]}`, ...env },
      cwd: ROOT,
    });
  };
  service("observer", { PERISCOPE_LISTEN_ADDR: opts.observerAddr });
  service("enricher");
  service("recorder");
  service("collector", { PERISCOPE_INTERFACES: interfaces });
  for (const [name, port] of Object.entries(OPS)) {
    await waitFor(
      async () => {
        const proc = sup.get(name);
        if (proc && proc.exitCode() !== null) {
          throw new Error(
            `${name} exited with ${proc.exitCode()}:\n${proc.lines().slice(-15).join("\n")}`,
          );
        }
        return (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok === true;
      },
      { timeoutMs: 30_000, what: `${name} ready on :${port}` },
    );
  }
  console.error(`watching ${interfaces}; observer on ${opts.observerAddr}; Ctrl-C to stop`);

  if (topology) traffic = await demoTraffic(topology);

  const observe = Bun.spawn(
    [
      "bun",
      "run",
      resolve(ROOT, "cli/src/main.ts"),
      "observe",
      "--server",
      opts.observerAddr,
      ...opts.observeArgs,
    ],
    { stdin: "ignore", stdout: "inherit", stderr: "inherit" },
  );
  const code = await observe.exited;
  await shutdown(stopping ? 0 : code);
} catch (err) {
  console.error(`periscope up failed: ${err instanceof Error ? err.message : String(err)}`);
  await shutdown(1);
}
