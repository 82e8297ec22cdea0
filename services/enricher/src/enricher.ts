import {
  type Bus,
  connectBus,
  openEndpointRegistry,
  openInterfaceRegistry,
  subjects,
} from "@periscope/bus";
import { compileEncoder, FlowBatchSchema } from "@periscope/proto";
import { createLogger, createMetrics, type Logger, startOpsServer } from "@periscope/telemetry";
import { MalformedFrameError } from "@periscope/wire";
import type { EnricherConfig } from "./config.ts";
import { type FrameDeps, processFrame } from "./frames.ts";
import { ReplyTracker } from "./replies.ts";

/** FlowBatch encoder; same bytes as `toBinary(FlowBatchSchema, batch)`, several times faster. */
const encodeFlowBatch = compileEncoder(FlowBatchSchema);

/** A running enricher. */
export interface RunningEnricher {
  /** Port of the metrics/health listener. */
  readonly opsPort: number;
  /** Drains in-flight frames, then closes subscriptions, NATS and the ops server. */
  stop(): Promise<void>;
}

/**
 * Subscribe to every collector's raw frames (as one member of the enricher
 * queue group), decode them into flows and publish FlowBatches on
 * periscope.flows.<node>.
 */
export async function startEnricher(
  config: Readonly<EnricherConfig>,
  log: Logger = createLogger("enricher", config.logLevel),
): Promise<RunningEnricher> {
  const metrics = createMetrics("enricher");
  const framesIn = metrics.counter("frames_received_total", "Raw frames received from NATS");
  const framesBad = metrics.counter(
    "frames_malformed_total",
    "Raw frames that could not be decoded",
  );
  const recordsIn = metrics.counter("records_received_total", "Kernel records received in frames");
  const flowsOut = metrics.counter("flows_published_total", "Flows published to observers");
  const batchesOut = metrics.counter("batches_published_total", "Flow batches published");
  const lost = metrics.counter(
    "events_lost_total",
    "Events reported lost, by where they were lost",
    ["where"],
  );
  const errors = metrics.counter("errors_total", "Errors by kind", ["kind"]);

  let ready = false;
  const ops = await startOpsServer({
    addr: config.opsAddr,
    registry: metrics.registry,
    ready: () => ready,
    log,
  });

  let bus: Bus;
  try {
    bus = await connectBus({
      url: config.natsUrl,
      name: `enricher-${config.nodeName}`,
      startLocal: true,
      log,
    });
  } catch (err) {
    await ops.stop();
    throw err;
  }
  const registry = await openEndpointRegistry(bus);
  const interfaces = await openInterfaceRegistry(bus);
  await Promise.all([registry.ready, interfaces.ready]);
  const replies = new ReplyTracker();
  const deps: FrameDeps = {
    endpoint: (ip) => registry.lookup(ip),
    interfaceName: (node, cookie, ifindex) => interfaces.lookup(node, cookie, ifindex)?.name,
    replies,
  };

  const sub = bus.nc.subscribe(subjects.rawAll, {
    queue: config.queueGroup,
    callback: (err, msg) => {
      if (err) {
        errors.inc({ kind: "subscription" });
        log.error({ err }, "raw subscription error");
        return;
      }
      framesIn.inc();
      let result: ReturnType<typeof processFrame>;
      try {
        result = processFrame(msg.data, deps);
      } catch (err) {
        if (err instanceof MalformedFrameError) {
          framesBad.inc();
          errors.inc({ kind: "malformed_frame" });
          log.warn(
            { subject: msg.subject, bytes: msg.data.length, err: err.message },
            "skipped malformed raw frame",
          );
          return;
        }
        errors.inc({ kind: "internal" });
        log.error({ err, subject: msg.subject }, "frame processing failed");
        return;
      }
      const { frame, batch, flows, failures, failureSamples } = result;
      recordsIn.inc(frame.records.length);
      if (frame.kernelLost > 0n) lost.inc({ where: "kernel" }, Number(frame.kernelLost));
      if (frame.collectorLost > 0n) lost.inc({ where: "collector" }, Number(frame.collectorLost));
      for (const [kind, n] of failures) {
        lost.inc({ where: `enricher_${kind}` }, n);
        errors.inc({ kind }, n);
        log.warn(
          { node: frame.nodeName, kind, count: n, sample: failureSamples.get(kind) },
          "records skipped",
        );
      }
      if (batch.responses.length === 0) return;
      try {
        bus.nc.publish(subjects.flows(frame.nodeName), encodeFlowBatch(batch));
        batchesOut.inc();
        flowsOut.inc(flows);
      } catch (err) {
        lost.inc({ where: "enricher_publish" }, batch.responses.length);
        errors.inc({ kind: "publish" });
        log.error({ err, node: frame.nodeName }, "publishing flows failed");
      }
    },
  });
  ready = true;
  log.info({ subject: subjects.rawAll, queue: config.queueGroup }, "enricher ready");

  let stopped: Promise<void> | undefined;
  return {
    opsPort: ops.port,
    stop() {
      stopped ??= (async () => {
        ready = false;
        await sub.drain();
        registry.close();
        await interfaces.close();
        await bus.close();
        await ops.stop();
        log.info("enricher stopped");
      })();
      return stopped;
    },
  };
}
