import { create } from "@bufbuild/protobuf";
import type { JsMsg } from "@nats-io/jetstream";
import {
  type Bus,
  connectBus,
  ensureDurable,
  ensureStream,
  openDropReasonRegistry,
  openEndpointRegistry,
  openInterfaceRegistry,
  openPolicyRuleNames,
  RAW_STREAM,
  SequenceLedger,
  subjects,
} from "@periscope/bus";
import { compileEncoder, FlowBatchSchema, FrameSourceSchema } from "@periscope/proto";
import {
  createLogger,
  createMetrics,
  errorReason,
  type Logger,
  type OpsServer,
  RateLimitedLog,
  startOpsServer,
} from "@periscope/telemetry";
import { MalformedFrameError, rawFrameRecordCount } from "@periscope/wire";
import {
  DEFAULT_L7_DNS_PORTS,
  DEFAULT_L7_HTTP_HEADERS,
  DEFAULT_L7_HTTP_PORTS,
  type EnricherConfig,
} from "./config.ts";
import { type FrameDeps, processFrame } from "./frames.ts";
import { startL7Metrics } from "./l7/metrics.ts";
import { L7Tracker } from "./l7/tracker.ts";

/** FlowBatch encoder; same bytes as `toBinary(FlowBatchSchema, batch)`, several times faster. */
const encodeFlowBatch = compileEncoder(FlowBatchSchema);

/** A raw frame not acknowledged this long is delivered again (to any enricher), ms. */
export const RAW_ACK_WAIT_MS = 4000;
/** FlowBatch publishes awaiting their JetStream acknowledgement at most. */
const MAX_PUBLISHES_IN_FLIGHT = 256;
/** Raw frames all enrichers together hold unacknowledged at most. */
const MAX_ACK_PENDING = 4096;

/** A running enricher. */
export interface RunningEnricher {
  /** Port of the metrics/health listener. */
  readonly opsPort: number;
  /** Stops taking frames, finishes the ones in hand, then closes NATS and the ops server. */
  stop(): Promise<void>;
}

/** Idempotency key of the FlowBatch decoded from one raw frame. */
function batchMsgId(bootId: string, partition: number, seq: bigint): string {
  return `${bootId}.${partition}.${seq}`;
}

/**
 * Takes raw frames from the `PERISCOPE_RAW` stream through the durable pull consumer
 * named by `config.queueGroup` (shared by every replica: a work queue), decodes them
 * into flows and publishes one FlowBatch per frame into `PERISCOPE_FLOWS` on
 * `periscope.flows.<node>`, carrying the frame's identity. A frame is acknowledged
 * only after its batch is stored, so a replica that dies leaves its frames for
 * redelivery; the batch's msgId (= the frame's) stores a redelivered frame once.
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
  const framesRedelivered = metrics.counter(
    "frames_redelivered_total",
    "Raw frames delivered again after an enricher did not acknowledge them in time",
  );
  const seqGaps = metrics.counter(
    "frame_seq_gaps_total",
    "Raw frames this replica saw missing from a collector partition's sequence (with several replicas, frames the others took count too; the observer counts the real losses)",
  );
  const recordsIn = metrics.counter("records_received_total", "Kernel records received in frames");
  const flowsOut = metrics.counter("flows_published_total", "Flows published to observers");
  const debugOut = metrics.counter(
    "debug_events_published_total",
    "Kernel debug records published as debug events (each accounts for one record, like a flow)",
  );
  const batchesOut = metrics.counter("batches_published_total", "Flow batches published");
  const lost = metrics.counter(
    "events_lost_total",
    "Events reported lost, by where they were lost",
    ["where"],
  );
  const errors = metrics.counter("errors_total", "Errors by kind", ["kind"]);
  const malformedLog = new RateLimitedLog({
    log,
    describe: (n) => `skipped ${n} malformed raw frames`,
  });
  const skippedLog = new RateLimitedLog({
    log,
    describe: (n) => `skipped ${n} undecodable records`,
  });
  const publishLog = new RateLimitedLog({
    log,
    describe: (n) => `${n} flow batch publishes refused; frames will be redelivered`,
  });

  let ready = false;
  let bus: Bus | undefined;
  const ops: OpsServer = await startOpsServer({
    addr: config.opsAddr,
    registry: metrics.registry,
    ready: () => ready && bus !== undefined && bus.connected(),
    log,
  });
  const cleanups: (() => Promise<unknown> | unknown)[] = [() => ops.stop()];
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        log.error({ err }, "enricher shutdown step failed");
      }
    }
  };

  try {
    const b = await connectBus({ url: config.natsUrl, name: `enricher-${config.nodeName}`, log });
    bus = b;
    cleanups.push(() => b.close());
    const setUp = async (): Promise<void> => {
      await ensureStream(b, "raw");
      await ensureStream(b, "flows");
      await ensureDurable(b, RAW_STREAM, config.queueGroup, {
        ackWaitMs: RAW_ACK_WAIT_MS,
        maxAckPending: MAX_ACK_PENDING,
      });
    };
    await setUp();
    b.onReconnect(() => {
      setUp().catch((err: unknown) => {
        errors.inc({ kind: "stream" });
        log.error({ err }, "raw/flows streams not available after reconnect");
      });
    });
    const registry = await openEndpointRegistry(b);
    cleanups.push(() => registry.close());
    const interfaces = await openInterfaceRegistry(b);
    cleanups.push(() => interfaces.close());
    const dropReasons = await openDropReasonRegistry(b);
    cleanups.push(() => dropReasons.close());
    const policyRules = await openPolicyRuleNames(b);
    cleanups.push(() => policyRules.close());
    await Promise.all([registry.ready, interfaces.ready, dropReasons.ready, policyRules.ready]);
    const deps: FrameDeps = {
      endpoint: (ip) => registry.lookup(ip),
      interfaceName: (node, cookie, ifindex) => interfaces.lookup(node, cookie, ifindex)?.name,
      dropReasonName: (node, reason) => dropReasons.lookup(node, reason),
      dropLocation: (node, location) => dropReasons.lookupLocation(node, location),
      policyRule: (id) => policyRules.lookup(id),
    };
    const ports = (list: readonly number[] | undefined, fallback: string): Set<number> =>
      new Set(list ?? fallback.split(",").map(Number));
    const l7 = new L7Tracker({
      dnsPorts: ports(config.l7DnsPorts, DEFAULT_L7_DNS_PORTS),
      httpPorts: ports(config.l7HttpPorts, DEFAULT_L7_HTTP_PORTS),
      httpHeaders: new Set(config.l7HttpHeaders ?? DEFAULT_L7_HTTP_HEADERS.split(",")),
    });
    deps.l7 = l7;
    const stopL7Metrics = startL7Metrics(metrics, l7);
    cleanups.push(() => stopL7Metrics());
    const ledger = new SequenceLedger({ holdMs: 2 * RAW_ACK_WAIT_MS });
    const js = b.js();

    let inFlight = 0;
    let slot: (() => void) | undefined;
    const release = (): void => {
      inFlight--;
      const wake = slot;
      slot = undefined;
      wake?.();
    };

    const handle = (msg: JsMsg): void => {
      framesIn.inc();
      if (msg.redelivered) framesRedelivered.inc();
      let result: ReturnType<typeof processFrame>;
      try {
        result = processFrame(msg.data, deps);
      } catch (err) {
        msg.term();
        if (err instanceof MalformedFrameError) {
          framesBad.inc();
          errors.inc({ kind: "malformed_frame" });
          malformedLog.note(err.message, { subject: msg.subject, bytes: msg.data.length });
          return;
        }
        errors.inc({ kind: "internal" });
        log.error({ err, subject: msg.subject }, "frame processing failed");
        return;
      }
      const { frame, batch, flows, debugEvents, failures, failureSamples } = result;
      const recordCount = rawFrameRecordCount(frame);
      const frameRecords = BigInt(recordCount) + frame.kernelLost + frame.collectorLost;
      if (!msg.redelivered) {
        ledger.accept(
          `${frame.nodeName}/${frame.bootId}/${frame.partition}`,
          frame.seq,
          frame.recordsBefore,
          frameRecords,
        );
      }
      recordsIn.inc(recordCount);
      if (frame.kernelLost > 0n) lost.inc({ where: "kernel" }, Number(frame.kernelLost));
      if (frame.collectorLost > 0n) lost.inc({ where: "collector" }, Number(frame.collectorLost));
      for (const [kind, n] of failures) {
        lost.inc({ where: `enricher_${kind}` }, n);
        errors.inc({ kind }, n);
        skippedLog.note(
          `${kind}: ${failureSamples.get(kind) ?? ""}`,
          { node: frame.nodeName, kind },
          n,
        );
      }
      batch.source = create(FrameSourceSchema, {
        bootId: frame.bootId,
        partition: frame.partition,
        seq: frame.seq,
        recordsBefore: frame.recordsBefore,
        records: frameRecords,
      });
      inFlight++;
      js.publish(subjects.flows(frame.nodeName), encodeFlowBatch(batch), {
        msgID: batchMsgId(frame.bootId, frame.partition, frame.seq),
        timeout: 2000,
      }).then(
        () => {
          msg.ack();
          batchesOut.inc();
          flowsOut.inc(flows);
          debugOut.inc(debugEvents);
          release();
        },
        (err: unknown) => {
          // Not acknowledged: the frame comes back after RAW_ACK_WAIT_MS (here or elsewhere).
          msg.nak(RAW_ACK_WAIT_MS);
          errors.inc({ kind: "publish" });
          publishLog.note(errorReason(err), { node: frame.nodeName, seq: String(frame.seq) });
          release();
        },
      );
    };

    const gapTimer = setInterval(() => {
      for (const gap of ledger.expire()) {
        seqGaps.inc(Number(gap.items));
        log.debug(
          { ...gap, fromSeq: String(gap.fromSeq) },
          "raw frames missing from this replica's view",
        );
      }
    }, 1000);
    cleanups.push(() => clearInterval(gapTimer));

    const consumer = await js.consumers.get(RAW_STREAM, config.queueGroup);
    // Short pull expiry: the server keeps serving a dead replica's pull requests until they
    // expire, and what it hands them waits for RAW_ACK_WAIT_MS.
    const messages = await consumer.consume({
      max_bytes: 8 * 1024 * 1024,
      expires: 1000,
    });
    const loop = (async () => {
      for await (const msg of messages) {
        if (inFlight >= MAX_PUBLISHES_IN_FLIGHT) {
          await new Promise<void>((resolve) => {
            slot = resolve;
          });
        }
        try {
          handle(msg);
        } catch (err) {
          errors.inc({ kind: "internal" });
          log.error({ err }, "raw frame handling failed");
        }
      }
    })().catch((err: unknown) => {
      errors.inc({ kind: "subscription" });
      log.error({ err }, "raw frame consumer ended with an error");
    });
    cleanups.push(async () => {
      ready = false;
      await messages.close();
      await loop;
      const deadline = Date.now() + 5000;
      while (inFlight > 0 && Date.now() < deadline) await Bun.sleep(10);
      malformedLog.flush();
      publishLog.flush();
    });
    ready = true;
    log.info(
      { stream: RAW_STREAM, durable: config.queueGroup, subject: subjects.rawAll },
      "enricher ready",
    );
  } catch (err) {
    await cleanup();
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    opsPort: ops.port,
    stop() {
      stopped ??= (async () => {
        await cleanup();
        log.info("enricher stopped");
      })();
      return stopped;
    },
  };
}
