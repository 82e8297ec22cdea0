/**
 * What the CLI tests that talk to a real observer process share: where the launcher
 * is, the PATH its children get, and the observer started as a child process.
 */
import { dirname, join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  EndpointSchema,
  FlowBatchSchema,
  FlowSchema,
  GetFlowsResponseSchema,
  IPSchema,
  IPVersion,
  Verdict,
} from "@periscope/proto";
import { freePort, waitFor } from "@periscope/testing";

/** Root of the repository. */
export const ROOT = join(import.meta.dir, "../..");
/** The `periscope` launcher users run. */
export const LAUNCHER = join(ROOT, "periscope");
/** Children get a fixed PATH that finds this bun, and nothing else from our environment. */
export const CHILD_PATH = `${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`;

/** An observer running as a child process. */
export interface ObserverProcess {
  readonly proc: ReturnType<typeof Bun.spawn>;
  /** `http://127.0.0.1:<port>` of its ops server (metrics, health). */
  readonly opsUrl: string;
}

/** How {@link spawnObserver} starts the observer. */
export interface SpawnObserverOptions {
  natsUrl: string;
  /** gRPC listen address, `127.0.0.1:<port>`. */
  server: string;
  nodeName: string;
  /** PATH of the child (default {@link CHILD_PATH}). */
  path?: string;
  /** Where its stdout goes (default inherited; stderr always is). */
  stdout?: "inherit" | "ignore";
  /** How long to wait for /readyz, ms (default 10000). */
  readyTimeoutMs?: number;
}

/**
 * Starts `services/observer/src/main.ts` on `opts.server` with ops on a free port and
 * warn-level logs; returns once /readyz answers. If it never does, the child is
 * killed and the wait's error thrown.
 */
export async function spawnObserver(opts: SpawnObserverOptions): Promise<ObserverProcess> {
  const opsPort = await freePort();
  const proc = Bun.spawn(["bun", "run", join(ROOT, "services/observer/src/main.ts")], {
    env: {
      PATH: opts.path ?? CHILD_PATH,
      PERISCOPE_NATS_URL: opts.natsUrl,
      PERISCOPE_LISTEN_ADDR: opts.server,
      PERISCOPE_OPS_ADDR: `127.0.0.1:${opsPort}`,
      PERISCOPE_NODE_NAME: opts.nodeName,
      PERISCOPE_LOG_LEVEL: "warn",
    },
    stdout: opts.stdout ?? "inherit",
    stderr: "inherit",
  });
  const opsUrl = `http://127.0.0.1:${opsPort}`;
  try {
    await waitFor(`${opsUrl}/readyz`, {
      timeoutMs: opts.readyTimeoutMs ?? 10_000,
      what: "observer to be ready",
    });
  } catch (err) {
    proc.kill("SIGKILL");
    await proc.exited;
    throw err;
  }
  return { proc, opsUrl };
}

/** Stops an observer started by {@link spawnObserver} (SIGTERM) and waits for its exit. */
export async function stopObserver(observer: ObserverProcess | undefined): Promise<void> {
  if (observer === undefined) return;
  observer.proc.kill("SIGTERM");
  await observer.proc.exited;
}

/** One forwarded IPv4 flow of a {@link podFlowBatch}: from `pod` (namespace demo) at `src`. */
export interface PodFlow {
  pod: string;
  src: string;
  dst: string;
}

/**
 * A FlowBatch of `node` as the enricher publishes it on `periscope.flows.<node>`: each
 * flow from its pod to demo/server, stamped now (+1 ms per flow, so they sort in order).
 */
export function podFlowBatch(node: string, flows: readonly PodFlow[]): Uint8Array {
  const responses = flows.map(({ pod, src, dst }, i) => {
    const time = timestampFromMs(Date.now() + i);
    const flow = create(FlowSchema, {
      time,
      nodeName: node,
      verdict: Verdict.FORWARDED,
      IP: create(IPSchema, { source: src, destination: dst, ipVersion: IPVersion.IPv4 }),
      source: create(EndpointSchema, { namespace: "demo", podName: pod }),
      destination: create(EndpointSchema, { namespace: "demo", podName: "server" }),
    });
    return create(GetFlowsResponseSchema, {
      nodeName: node,
      time,
      responseTypes: { case: "flow", value: flow },
    });
  });
  return toBinary(FlowBatchSchema, create(FlowBatchSchema, { responses }));
}
