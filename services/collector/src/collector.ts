import { randomUUID } from "node:crypto";
import { removeStaleCaptureFilters, TraceProgram, type TraceSettings } from "@periscope/bpf";
import {
  type Bus,
  connectBus,
  ensureStream,
  openInterfaceRegistry,
  subjects,
} from "@periscope/bus";
import {
  createLogger,
  createMetrics,
  errorReason,
  type Logger,
  type Metrics,
  type OpsServer,
  RateLimitedLog,
  startOpsServer,
} from "@periscope/telemetry";
import { AgentEvents } from "./agent-events.ts";
import {
  type AttachableProgram,
  type AttachedDevice,
  filterPriorityOf,
  InterfaceAttacher,
} from "./attacher.ts";
import { CaptureService, captureFilterPriority, loadCaptureProgram } from "./capture.ts";
import { createSystemClock, type FramerClock } from "./clock.ts";
import type { CollectorConfig } from "./config.ts";
import { startSettingsControl } from "./control.ts";
import type { DeviceLister } from "./discovery.ts";
import { DrainLoop, type RecordSource } from "./drain.ts";
import { type KernelDrops, startKernelDrops } from "./drops.ts";
import { Framer } from "./framer.ts";
import { CollectorMetrics } from "./metrics.ts";
import type { FlowSource } from "./netflow.ts";
import type { NetflowStats } from "./netflow-metrics.ts";
import { type RunningNetflow, startNetflow } from "./netflow-start.ts";
import { ownerScopeDevices } from "./owner-namespaces.ts";
import { startNodePolicy } from "./policy.ts";
import { type ProcessEvents, startProcessEvents } from "./proc.ts";
import { PublishQueue } from "./publisher.ts";
import { InterfaceRegistrySync } from "./registry.ts";
import { DeviceWatch } from "./watch.ts";

export { targetName } from "./attacher.ts";

/** What the collector needs from a loaded trace program (`TraceProgram` from @periscope/bpf). */
export interface CollectorProgram extends RecordSource, AttachableProgram {
  close(): void;
  /** Map descriptors of the trace object; without it no kernel drops are reported. */
  mapFd?(name: string): number;
  /** Writes the run-time settings (aggregation, capture rules, debug); absent in fakes. */
  setSettings?(update: Partial<TraceSettings>): TraceSettings;
  /** The kernel flow table; without it no flow records are exported. */
  flowTable?(): FlowSource;
}

/** Optional parts a caller may supply (tests, bench); anything absent is created from config. */
export interface CollectorDeps {
  readonly log?: Logger;
  readonly metrics?: Metrics;
  /** An already loaded program; the collector then neither loads nor closes it. */
  readonly program?: CollectorProgram;
  readonly clock?: FramerClock;
  /** Defaults to a random UUID per start. */
  readonly bootId?: string;
  /** Device discovery; defaults to /sys/class/net and `ip -n <netns> -j link show`. */
  readonly lister?: DeviceLister;
}

/** Counters of one collector run (the same numbers as its Prometheus metrics). */
export interface CollectorStats {
  eventsRead: number;
  framesPublished: number;
  eventsPublished: number;
  kernelLost: number;
  queueLost: number;
  publishLost: number;
}

/** A running collector. */
export interface Collector {
  readonly bootId: string;
  /** The NATS URL in use. */
  readonly natsUrl: string;
  /** Port of the ops server (/metrics, /healthz, /readyz). */
  readonly opsPort: number;
  /** Interfaces currently attached, as `[<netns>/]<ifname>`. */
  attached(): string[];
  /** Interfaces currently attached with their ifindex and netns cookie. */
  devices(): AttachedDevice[];
  /** Agent events of this run; policy code reports changes through `policyChanged`. */
  readonly agentEvents: AgentEvents;
  /** Runs a discovery pass now (it also runs every discovery interval) and updates the registry. */
  rescan(): Promise<void>;
  stats(): Readonly<CollectorStats>;
  /** Flow export counters, undefined while flow export is off. */
  netflowStats(): Readonly<NetflowStats> | undefined;
  /**
   * Stops draining, publishes what is left (waiting up to 5 s for NATS), detaches and
   * frees the program if it loaded it, stops the ops server and closes NATS. Safe twice.
   */
  stop(): Promise<void>;
}

/**
 * Starts a collector: loads the trace program, connects to NATS, attaches to the devices
 * matching `config.interfaces` (registering each in the interfaces KV bucket), starts the
 * ops server and the drain loop. Device and namespace notifications attach new devices
 * and forget removed ones as they happen; a full rescan every `discoveryIntervalMs`
 * catches what they missed; failed attaches are retried after `attachRetryMs`. Throws if the
 * program cannot be loaded or NATS cannot be reached.
 */
export async function startCollector(
  config: CollectorConfig,
  deps: CollectorDeps = {},
): Promise<Collector> {
  const log = deps.log ?? createLogger("collector", config.logLevel);
  const metrics = deps.metrics ?? createMetrics("collector");
  const m = new CollectorMetrics(metrics);
  const bootId = deps.bootId ?? randomUUID();
  const clock = deps.clock ?? createSystemClock();
  const ownsProgram = deps.program === undefined;
  const program: CollectorProgram =
    deps.program ??
    TraceProgram.load({
      objectPath: config.bpfObjectPath,
      captureLen: config.captureLen,
      filterPriority: filterPriorityOf(config.nodeName),
      ctEntries: config.ctEntries,
      // The flow tables are preallocated per CPU: minimal while flow export is off.
      flowEntries: config.netflow.enabled ? config.netflow.tableEntries : 1,
    });
  program.setSettings?.({
    aggregation: config.aggregation,
    reportIntervalMs: config.aggregationIntervalMs,
    captureRules: [...config.captureRules],
  });
  let bus: Bus | undefined;
  let ops: OpsServer | undefined;
  let running = true;
  // Ready once everything is up: devices attached and, with flow export, accounting on.
  let started = false;
  let drops: KernelDrops | undefined;
  try {
    drops = startKernelDrops(config, program, metrics, log);
    ops = await startOpsServer({
      addr: config.opsAddr,
      registry: m.registry,
      ready: () => running && started && bus !== undefined && bus.connected(),
      log,
    });
    bus = await connectBus({
      ...(config.natsUrl !== undefined ? { url: config.natsUrl } : {}),
      name: `periscope-collector/${config.nodeName}`,
      log,
    });
    const connectedBus = bus;
    const ensureRaw = (): Promise<void> =>
      ensureStream(connectedBus, "raw").catch((err: unknown) => {
        m.error("stream");
        log.error({ err }, "raw stream not available; frames wait in the queue");
      });
    await ensureRaw();
    connectedBus.onReconnect(() => void ensureRaw());
    const js = connectedBus.js();
    await drops?.publishReasons(connectedBus).catch((err: unknown) => {
      m.error("drop_reasons");
      log.error({ err }, "publishing the kernel drop reasons failed; drops show their numbers");
    });
    const ensureEvents = (): Promise<void> =>
      ensureStream(connectedBus, "events").catch((err: unknown) => {
        m.error("stream");
        log.error({ err }, "events stream not available; agent events are retried");
      });
    await ensureEvents();
    connectedBus.onReconnect(() => void ensureEvents());
    const agentEvents = new AgentEvents({
      node: config.nodeName,
      bootId,
      publish: async (subject, payload, msgID) => {
        await js.publish(subject, payload, { msgID, timeout: 2000 });
      },
      count: (result) => {
        if (result === "lost") m.error("agent_event_lost");
      },
      log,
    });
    agentEvents.started();
    if (ownsProgram) {
      agentEvents.programLoaded({ object: config.bpfObjectPath, captureLen: config.captureLen });
    }

    const publishRetries = new RateLimitedLog({
      log,
      describe: (n) => `${n} frame publishes refused by JetStream; frames queued again`,
    });
    const rawSubjects = Array.from({ length: config.partitions }, (_, p) =>
      subjects.raw(config.nodeName, p),
    );
    const queue = new PublishQueue({
      transport: {
        publish: async (subject, payload, msgID) => {
          await js.publish(subject, payload, { msgID, timeout: 2000 });
        },
        connected: () => connectedBus.connected(),
      },
      subjectFor: (p) => rawSubjects[p] ?? subjects.raw(config.nodeName, p),
      maxFrames: config.publishQueueFrames,
      onPublished: (frame) => m.published(frame.records),
      onRetry: (frame, err) => {
        m.error("publish_retry");
        publishRetries.note(errorReason(err), { partition: frame.partition, seq: frame.seq });
      },
    });
    const framer = new Framer({
      nodeName: config.nodeName,
      bootId,
      partitions: config.partitions,
      maxRecords: config.frameMaxRecords,
      maxDelayMs: config.frameMaxDelayMs,
      clock,
      sink: (frame) => {
        if (queue.offer(frame)) return true;
        m.lost("queue", frame.records);
        return false;
      },
    });
    const loop = new DrainLoop({
      source: program,
      framer,
      queue,
      monotonicMs: () => clock.monotonicMs(),
      onRead: (n) => m.read(n),
      onKernelLost: (delta) => m.lost("kernel", Number(delta)),
      onError: (err) => {
        m.error("drain");
        log.error({ err }, "drain loop step failed");
      },
    });

    const attacher = new InterfaceAttacher({
      patterns: config.interfaces,
      program,
      attachRetryMs: config.attachRetryMs,
      metrics: m,
      log,
      ...(deps.lister !== undefined ? { lister: deps.lister } : {}),
    });
    const registry = new InterfaceRegistrySync({
      node: config.nodeName,
      open: () => openInterfaceRegistry(connectedBus),
      metrics: m,
      log,
    });
    // Registry entries follow every attach and detach (notifications included), once per tick.
    let registryDue = false;
    const syncRegistry = (): void => {
      if (registryDue) return;
      registryDue = true;
      queueMicrotask(() => {
        registryDue = false;
        registry.update(attacher.attached());
        drops?.watchDevices(attacher.attached());
        void registry.sync();
      });
    };
    attacher.listen({ onAttach: syncRegistry, onDetach: syncRegistry });
    attacher.listen({
      onAttach: (dev) => agentEvents.attached(dev),
      onDetach: (dev, reason) => agentEvents.detached(dev, reason),
    });
    let watch: DeviceWatch | undefined;
    try {
      watch = new DeviceWatch({ attacher, metrics: m, log });
    } catch (err) {
      m.error("discovery");
      log.error({ err }, "device notifications unavailable; only periodic rescans find changes");
    }
    let rescanning: Promise<void> | undefined;
    const rescan = (countMissed = false): Promise<void> => {
      if (!running) return Promise.resolve();
      rescanning ??= (async () => {
        const fixed = watch?.syncWatches() ?? 0;
        if (countMissed && fixed > 0) m.missedByNotifications(fixed);
        await attacher.scan({ countMissed });
        registry.update(attacher.attached());
        drops?.watchDevices(attacher.attached());
        await registry.sync();
      })().finally(() => {
        rescanning = undefined;
      });
      return rescanning;
    };
    const onDiscoveryError = (err: unknown): void => {
      m.error("discovery");
      log.error({ err }, "discovery pass failed");
    };
    await rescan();
    const netflowSource = config.netflow.enabled ? program.flowTable?.() : undefined;
    const netflow: RunningNetflow | undefined =
      netflowSource !== undefined
        ? await startNetflow({
            config: config.netflow,
            node: config.nodeName,
            source: netflowSource,
            bus: connectedBus,
            metrics,
            log,
            onAttach: (cb) => attacher.listen({ onAttach: cb }),
            attached: () => attacher.attached(),
          })
        : undefined;
    const policy = await startNodePolicy({
      program,
      bus: connectedBus,
      devices: () => attacher.attached(),
      metrics,
      log,
      agentEvents,
    });
    // Recordings on periscope.ctl.<node>.record: capture attached only while one is active.
    const capture = new CaptureService({
      nc: connectedBus.nc,
      node: config.nodeName,
      load: () => loadCaptureProgram(config.bpfObjectPath, filterPriorityOf(config.nodeName)),
      devices: () => attacher.attached(),
      bootToRealtimeNs: () => clock.bootToRealtimeNs(),
      metrics,
      log,
      ...(ownsProgram
        ? {
            removeStale: (t) =>
              removeStaleCaptureFilters(
                t,
                captureFilterPriority(filterPriorityOf(config.nodeName)),
              ),
          }
        : {}),
    });
    // Devices attached before this point (the first scan) are checked for stale filters too.
    for (const dev of attacher.attached()) capture.deviceAttached(dev);
    attacher.listen({
      onAttach: (dev) => capture.deviceAttached(dev),
      onDetach: () => capture.devicesChanged(),
    });
    // Run-time settings on periscope.ctl.<node>.settings.
    const setSettings = program.setSettings?.bind(program);
    const control =
      setSettings &&
      startSettingsControl({
        nc: connectedBus.nc,
        node: config.nodeName,
        target: { setSettings },
        log,
        onBad: () => m.error("settings_request"),
      });
    // Safety net behind the notifications; what it finds counts as missed.
    const discovery = setInterval(
      () => rescan(true).catch(onDiscoveryError),
      config.discoveryIntervalMs,
    );
    const retries = setInterval(() => {
      const scopes = attacher.failingScopes();
      if (running && scopes.size > 0) attacher.scan({ scopes }).catch(onDiscoveryError);
    }, config.attachRetryMs);
    // Process lifecycle on periscope.proc.<node>; socket owners into their flow's partition.
    const processEvents: ProcessEvents | undefined = await startProcessEvents({
      config: config.processEvents,
      node: config.nodeName,
      bootId,
      bus: connectedBus,
      owners: framer,
      clock,
      metrics,
      log,
      onError: () => m.error("process_events"),
      devices: () => ownerScopeDevices(attacher.attached()),
    });
    // Socket owners only for the namespaces of attached devices, kept in sync.
    if (processEvents !== undefined) {
      const events = processEvents;
      const syncNetns = (): void => events.watchDevices(ownerScopeDevices(attacher.attached()));
      attacher.listen({ onAttach: syncNetns, onDetach: syncNetns });
    }
    loop.start();
    started = true;
    log.info(
      { node: config.nodeName, bootId, partitions: config.partitions, ops: ops.port },
      "collector started",
    );

    const opsServer = ops;
    let stopping: Promise<void> | undefined;
    const shutdown = async (): Promise<void> => {
      running = false;
      clearInterval(discovery);
      clearInterval(retries);
      await rescanning;
      await watch?.close();
      // Before the drain loop stops: the last socket-owner records go into the framer.
      await processEvents?.stop();
      loop.stop();
      const left = await queue.drain(5000);
      if (left > 0) {
        const dropped = queue.takeAll().reduce((n, f) => n + f.records, 0);
        m.lost("queue", dropped);
        log.error({ frames: left, records: dropped }, "frames not published before shutdown");
      }
      // Before detaching: the last flow records go out while the tables are still there.
      await netflow?.stop();
      capture.close();
      await policy?.stop();
      control?.stop();
      await attacher.detachAll();
      drops?.close();
      if (ownsProgram) program.close();
      agentEvents.stopped({ ...m.stats });
      await Promise.race([agentEvents.flush(), Bun.sleep(3000)]);
      await registry.close(3000);
      await opsServer.stop();
      await connectedBus.close();
      log.info({ ...m.stats }, "collector stopped");
    };
    return {
      bootId,
      natsUrl: connectedBus.url,
      opsPort: ops.port,
      attached: () => attacher.attached().map((d) => d.name),
      devices: () => attacher.attached(),
      agentEvents,
      rescan: () => rescan(),
      stats: () => ({ ...m.stats }),
      netflowStats: () => (netflow === undefined ? undefined : { ...netflow.metrics.stats }),
      stop() {
        stopping ??= shutdown();
        return stopping;
      },
    };
  } catch (err) {
    running = false;
    await ops?.stop();
    await bus?.close();
    drops?.close();
    if (ownsProgram) program.close();
    throw err;
  }
}
