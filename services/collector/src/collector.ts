import { randomUUID } from "node:crypto";
import { TraceProgram } from "@periscope/bpf";
import { type Bus, connectBus, subjects } from "@periscope/bus";
import {
  createLogger,
  createMetrics,
  type Logger,
  type Metrics,
  type OpsServer,
  startOpsServer,
} from "@periscope/telemetry";
import { createSystemClock, type FramerClock } from "./clock.ts";
import type { CollectorConfig, InterfaceTarget } from "./config.ts";
import { DrainLoop, type RecordSource } from "./drain.ts";
import { Framer } from "./framer.ts";
import { CollectorMetrics } from "./metrics.ts";
import { PublishQueue } from "./publisher.ts";

/** What the collector needs from a loaded trace program (`TraceProgram` from @periscope/bpf). */
export interface CollectorProgram extends RecordSource {
  attach(target: InterfaceTarget): void;
  detach(target: InterfaceTarget): void;
  close(): void;
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
  stats(): Readonly<CollectorStats>;
  /**
   * Stops draining, publishes what is left (waiting up to 5 s for NATS), detaches and
   * frees the program if it loaded it, stops the ops server and closes NATS. Safe twice.
   */
  stop(): Promise<void>;
}

/** `[<netns>/]<ifname>` */
export function targetName(t: InterfaceTarget): string {
  return t.netns === undefined ? t.ifname : `${t.netns}/${t.ifname}`;
}

/**
 * Starts a collector: loads and attaches the trace program, connects to NATS, starts the
 * ops server and the drain loop. Interfaces that fail to attach are retried every
 * `attachRetryMs`. Throws if the program cannot be loaded or NATS cannot be reached.
 */
export async function startCollector(
  config: CollectorConfig,
  deps: CollectorDeps = {},
): Promise<Collector> {
  const log = deps.log ?? createLogger("collector", config.logLevel);
  const m = new CollectorMetrics(deps.metrics ?? createMetrics("collector"));
  const bootId = deps.bootId ?? randomUUID();
  const clock = deps.clock ?? createSystemClock();
  const ownsProgram = deps.program === undefined;
  const program: CollectorProgram =
    deps.program ??
    TraceProgram.load({ objectPath: config.bpfObjectPath, captureLen: config.captureLen });
  let bus: Bus | undefined;
  let ops: OpsServer | undefined;
  try {
    bus = await connectBus({
      ...(config.natsUrl !== undefined ? { url: config.natsUrl } : {}),
      name: `periscope-collector/${config.nodeName}`,
      startLocal: config.natsUrl === undefined,
      log,
    });
    const connectedBus = bus;
    const attached = new Map<string, InterfaceTarget>();
    const waiting = new Map<string, InterfaceTarget>(
      config.interfaces.map((t) => [targetName(t), t]),
    );
    let running = true;
    ops = await startOpsServer({
      addr: config.opsAddr,
      registry: m.registry,
      ready: () => running && connectedBus.connected(),
      log,
    });

    const rawSubjects = Array.from({ length: config.partitions }, (_, p) =>
      subjects.raw(config.nodeName, p),
    );
    let framer: Framer | undefined;
    const queue = new PublishQueue({
      transport: {
        publish: (subject, payload) => connectedBus.nc.publish(subject, payload),
        flush: () => connectedBus.nc.flush(),
        connected: () => connectedBus.connected(),
      },
      subjectFor: (p) => rawSubjects[p] ?? subjects.raw(config.nodeName, p),
      maxFrames: config.publishQueueFrames,
      onPublished: (frame) => m.published(frame.records.length),
      onPublishError: (frame, err) => {
        m.lost("publish", frame.records.length);
        m.error("publish");
        log.error({ err, partition: frame.partition, seq: frame.seq }, "publishing a frame failed");
        framer?.addLost(frame.kernelLost, frame.collectorLost + BigInt(frame.records.length));
      },
      onFlushError: (err) => {
        m.error("flush");
        log.warn({ err }, "NATS flush failed; frames wait in the queue");
      },
    });
    framer = new Framer({
      nodeName: config.nodeName,
      bootId,
      partitions: config.partitions,
      maxRecords: config.frameMaxRecords,
      maxDelayMs: config.frameMaxDelayMs,
      clock,
      sink: (frame) => {
        if (queue.offer(frame)) return true;
        m.lost("queue", frame.records.length);
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

    const attachWaiting = (): void => {
      for (const [name, target] of waiting) {
        try {
          program.attach(target);
          waiting.delete(name);
          attached.set(name, target);
          log.info({ interface: name }, "attached");
        } catch (err) {
          m.attachError();
          log.warn({ err, interface: name, retryMs: config.attachRetryMs }, "attach failed");
        }
      }
      m.setAttached(attached.size);
    };
    attachWaiting();
    const retry = setInterval(() => {
      if (waiting.size > 0) attachWaiting();
    }, config.attachRetryMs);
    loop.start();
    log.info(
      { node: config.nodeName, bootId, partitions: config.partitions, ops: ops.port },
      "collector started",
    );

    const opsServer = ops;
    let stopping: Promise<void> | undefined;
    const shutdown = async (): Promise<void> => {
      running = false;
      clearInterval(retry);
      loop.stop();
      const left = await queue.drain(5000);
      if (left > 0) {
        const dropped = queue.takeAll().reduce((n, f) => n + f.records.length, 0);
        m.lost("queue", dropped);
        log.error({ frames: left, records: dropped }, "frames not published before shutdown");
      }
      if (ownsProgram) program.close();
      else {
        for (const [name, target] of attached) {
          try {
            program.detach(target);
          } catch (err) {
            m.error("detach");
            log.error({ err, interface: name }, "detach failed");
          }
        }
      }
      attached.clear();
      m.setAttached(0);
      await opsServer.stop();
      await connectedBus.close();
      log.info({ ...m.stats }, "collector stopped");
    };
    return {
      bootId,
      natsUrl: connectedBus.url,
      opsPort: ops.port,
      attached: () => [...attached.keys()],
      stats: () => ({ ...m.stats }),
      stop() {
        stopping ??= shutdown();
        return stopping;
      },
    };
  } catch (err) {
    await ops?.stop();
    await bus?.close();
    if (ownsProgram) program.close();
    throw err;
  }
}
