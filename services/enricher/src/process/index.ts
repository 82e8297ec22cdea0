import type { Bus } from "@periscope/bus";
import type { Logger, Metrics } from "@periscope/telemetry";
import { CgroupPaths } from "./cgroups.ts";
import { ContainerCache } from "./container-cache.ts";
import { FlowProcesses } from "./flow-join.ts";
import { type ProcessIngest, startProcessIngest } from "./ingest.ts";
import { startProcessMetrics } from "./metrics.ts";
import { ProcessCache } from "./process-cache.ts";

export { CgroupPaths, cgroup2Mount } from "./cgroups.ts";
export {
  ContainerCache,
  type ContainerEvent,
  type ContainerInfo,
  type ContainerListener,
  parseCgroupPath,
} from "./container-cache.ts";
export {
  type ContainerEventStats,
  containerEventSubject,
  containerTelemetryEvent,
  publishContainerEvents,
} from "./container-events.ts";
export {
  attachProcess,
  FlowProcesses,
  type FlowProcessStats,
  type JoinMiss,
  PROCESS_TYPE_URL,
} from "./flow-join.ts";
export { type ProcessIngest, startProcessIngest } from "./ingest.ts";
export { startProcessMetrics } from "./metrics.ts";
export { ProcessCache, type ProcessEntry } from "./process-cache.ts";

/** The enricher's process side: caches, the lifecycle reader and the flow join. */
export interface EnricherProcesses {
  readonly cache: ProcessCache;
  readonly containers: ContainerCache;
  readonly join: FlowProcesses;
  readonly ingest: ProcessIngest;
  stop(): Promise<void>;
}

/**
 * Starts the process cache (backfilled from /proc), the container cache (following the
 * Docker engine when its socket is there) and the reader of lifecycle frames; with
 * `metrics`, exports their counts (see startProcessMetrics).
 */
export async function startEnricherProcesses(opts: {
  readonly bus: Bus;
  readonly log: Logger;
  readonly metrics?: Metrics;
  readonly onError?: (kind: "malformed_proc_frame" | "malformed_proc_record") => void;
}): Promise<EnricherProcesses> {
  // Records from a little before the backfill: a process started during it is not missed.
  const startMs = Date.now() - 2000;
  const cache = new ProcessCache({ cgroups: new CgroupPaths() });
  const backfilled = cache.backfill();
  const containers = new ContainerCache();
  await containers.start();
  const join = new FlowProcesses(cache, containers);
  const ingest = await startProcessIngest({ ...opts, cache, startMs });
  const stopMetrics = opts.metrics
    ? startProcessMetrics(opts.metrics, { cache, containers, join, ingest })
    : undefined;
  opts.log.info({ backfilled, docker: containers.dockerPresent }, "process cache ready");
  return {
    cache,
    containers,
    join,
    ingest,
    async stop() {
      stopMetrics?.();
      containers.stop();
      await ingest.stop();
    },
  };
}
