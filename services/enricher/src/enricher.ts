import { create } from "@bufbuild/protobuf";
import type { JsMsg } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import {
  type Bus,
  connectBus,
  DEFAULT_LEASE_TTL_MS,
  DEFAULT_RAW_PARTITIONS,
  ensureStream,
  openDropReasonRegistry,
  openEndpointRegistry,
  openInterfaceRegistry,
  openLeaseBucket,
  openPolicyRuleNames,
  RAW_STREAM,
  removeDurable,
  type SequenceGap,
  SequenceLedger,
  subjects,
} from "@periscope/bus";
import type { EndpointInfo } from "@periscope/model";
import {
  compileEncoder,
  FlowBatchSchema,
  type FrameSource,
  FrameSourceSchema,
  type RawFrame,
} from "@periscope/proto";
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
import { type FrameDeps, type FrameResult, processFrame } from "./frames.ts";
import { type EncodedFrame, encodeFrame } from "./frames-fast.ts";
import { type GapOrigin, gapBatches } from "./gaps.ts";
import { startConfiguredHubbleMetrics } from "./hubble-metrics/index.ts";
import { DNS_NAMES_SUBJECT, startDnsNameShare } from "./l7/dns-share.ts";
import { startDnsShareMetrics } from "./l7/dns-share-metrics.ts";
import { startL7Metrics } from "./l7/metrics.ts";
import { L7Tracker } from "./l7/tracker.ts";
import { holderId, PartitionOwnership } from "./ownership.ts";
import { InFlightGate, type PartitionReader, startPartitionReader } from "./partition-reader.ts";
import { publishContainerEvents, startEnricherProcesses } from "./process/index.ts";
import { findUnownedFrames } from "./unowned.ts";

/** FlowBatch encoder; same bytes as `toBinary(FlowBatchSchema, batch)`, several times faster. */
const encodeFlowBatch = compileEncoder(FlowBatchSchema);

/** FlowBatch.source of a frame's batch: its identity and the records it accounts for. */
function frameSource(frame: RawFrame): FrameSource {
  return create(FrameSourceSchema, {
    bootId: frame.bootId,
    partition: frame.partition,
    seq: frame.seq,
    recordsBefore: frame.recordsBefore,
    records: BigInt(rawFrameRecordCount(frame)) + frame.kernelLost + frame.collectorLost,
  });
}

/** A raw frame not acknowledged this long is delivered again (to its partition's owner), ms. */
export const RAW_ACK_WAIT_MS = 4000;
/**
 * A hole in a partition's frame sequence is declared lost after this long, ms: longer
 * than a redelivery takes (RAW_ACK_WAIT_MS), shorter than the observer's own hold, so
 * the observer gets the stand-in batches before it would count the hole itself.
 */
export const GAP_HOLD_MS = RAW_ACK_WAIT_MS + 2000;
/** How often the owner of partition 0 looks for frames on partitions nobody reads, ms. */
const UNOWNED_CHECK_MS = 10_000;
/** FlowBatch publishes awaiting their JetStream acknowledgement at most. */
const MAX_PUBLISHES_IN_FLIGHT = 256;
/** Raw frames of one partition held unacknowledged at most. */
const MAX_ACK_PENDING = 1024;

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

/** Durable through which partition `p` is read, whoever owns it. */
export function partitionDurable(queueGroup: string, p: number): string {
  return `${queueGroup}-p${p}`;
}

/**
 * Takes the raw partitions this replica owns (leases in KV `periscope-leases`, see
 * ownership.ts) from the `PERISCOPE_RAW` stream, one durable per partition, decodes
 * them into flows and publishes one FlowBatch per frame into `PERISCOPE_FLOWS` on
 * `periscope.flows.<node>`, carrying the frame's identity. Both directions of a
 * connection share a partition, so one replica sees all of it. A frame is acknowledged
 * only after its batch is stored, so a replica that dies leaves its frames for
 * redelivery to the partition's next owner; the batch's msgId (= the frame's) stores a
 * redelivered frame once. A hole in a partition's frame sequence becomes a LostEvent
 * with the exact record count after GAP_HOLD_MS (see gaps.ts).
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
    'Raw frames missing from the sequence of a partition this replica owned (their records count in events_lost_total{where="bus"})',
  );
  const framesLate = metrics.counter(
    "frames_late_total",
    "Raw frames that arrived after they had been declared lost (acknowledged, not decoded)",
  );
  const framesReturned = metrics.counter(
    "frames_returned_total",
    "Raw frames handed back undecoded because their partition's lease was no longer surely held",
  );
  const batchesDuplicate = metrics.counter(
    "batches_duplicate_total",
    "Flow batches the flows stream had already stored (the frame was decoded twice)",
  );
  const ownershipChanges = metrics.counter(
    "partition_ownership_changes_total",
    "Raw partitions acquired, released or lost by this replica",
    ["change"],
  );
  const partitionsOwned = metrics.gauge("partitions_owned", "Raw partitions this replica owns");
  const frameWait = metrics.histogram(
    "frame_wait_seconds",
    "Time from a raw frame being stored in the stream to its owner taking it",
    [],
    [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  );
  const framesUnowned = metrics.gauge(
    "raw_frames_unowned",
    "Raw frames waiting on partitions beyond --partitions, which no enricher reads (checked by the owner of partition 0)",
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
  const unownedLog = new RateLimitedLog({
    log,
    describe: (n) =>
      `${n} raw frames wait on partitions no enricher reads: collectors and enrichers need the same --partitions`,
  });
  const pullLog = new RateLimitedLog({
    log,
    describe: (n) => `${n} raw partition pulls failed; retrying`,
  });
  const leaseLog = new RateLimitedLog({
    log,
    describe: (n) => `${n} partition lease operations failed`,
  });

  const dnsShareLog = new RateLimitedLog({
    log,
    describe: (n) => `refused ${n} malformed DNS name messages on ${DNS_NAMES_SUBJECT}`,
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
    const partitionCount = config.partitions ?? DEFAULT_RAW_PARTITIONS;
    let leases: KV | undefined;
    const setUp = async (): Promise<void> => {
      await ensureStream(b, "raw");
      await ensureStream(b, "flows");
      // The lease bucket lives in memory: a restarted broker needs it made again.
      leases = await openLeaseBucket(b, DEFAULT_LEASE_TTL_MS);
    };
    await setUp();
    // A durable shared by every replica (an older layout) would overlap the partition ones.
    if (await removeDurable(b, RAW_STREAM, config.queueGroup)) {
      log.warn({ durable: config.queueGroup }, "removed the shared raw durable of an older layout");
    }
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
    /** Docker containers' addresses (plain Docker hosts), once the container cache runs. */
    let containerEndpoint: ((ip: string) => EndpointInfo | undefined) | undefined;
    const deps: FrameDeps = {
      endpoint: (ip) => registry.lookup(ip) ?? containerEndpoint?.(ip),
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
    const dnsShare = startDnsNameShare({
      nc: b.nc,
      cache: l7.names,
      instanceId: `${config.nodeName}.${crypto.randomUUID()}`,
      onBad: (reason) => dnsShareLog.note(reason),
    });
    const stopDnsShareMetrics = startDnsShareMetrics(metrics, dnsShare);
    cleanups.push(() => dnsShare.stop(), stopDnsShareMetrics);
    const processes = await startEnricherProcesses({
      bus: b,
      log,
      metrics,
      onError: (kind) => errors.inc({ kind }),
    });
    cleanups.push(() => processes.stop());
    deps.processes = processes.join;
    containerEndpoint = (ip) => processes.containers.endpoint(ip);
    const stopL7Metrics = startL7Metrics(metrics, l7);
    cleanups.push(() => stopL7Metrics());
    const hubble = await startConfiguredHubbleMetrics(config, log);
    if (hubble) cleanups.push(() => hubble.stop());
    const ledger = new SequenceLedger({ holdMs: GAP_HOLD_MS });
    /** Where each ledger key's frames come from, for the batches that stand in for lost ones. */
    const origins = new Map<string, GapOrigin>();
    const js = b.js();
    const gate = new InFlightGate(MAX_PUBLISHES_IN_FLIGHT);
    const release = (): void => gate.give();
    let ownership: PartitionOwnership | undefined;

    const handle = (msg: JsMsg, partition: number): void => {
      if (ownership?.holds(partition) !== true) {
        // Possibly someone else's by now: the frame goes back to the stream undecoded.
        msg.nak();
        framesReturned.inc();
        release();
        return;
      }
      framesIn.inc();
      // Declared bigint, a number at run time: Number() reads both.
      frameWait.observe(Math.max(0, Date.now() - Number(msg.info.timestampNanos) / 1e6) / 1000);
      if (msg.redelivered) framesRedelivered.inc();
      let result: FrameResult | EncodedFrame;
      try {
        // Hubble's metrics read the flows; without them the batch is written straight to bytes.
        result = hubble ? processFrame(msg.data, deps) : encodeFrame(msg.data, deps, frameSource);
      } catch (err) {
        msg.term();
        release();
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
      const { frame, flows, debugEvents, failures, failureSamples } = result;
      const recordCount = rawFrameRecordCount(frame);
      const frameRecords = BigInt(recordCount) + frame.kernelLost + frame.collectorLost;
      const key = `${frame.nodeName}/${frame.bootId}/${frame.partition}`;
      if (!origins.has(key)) {
        origins.set(key, {
          node: frame.nodeName,
          bootId: frame.bootId,
          partition: frame.partition,
        });
      }
      if (ledger.accept(key, frame.seq, frame.recordsBefore, frameRecords) === "late") {
        // Already stood in for by a LostEvent (same msgId): counted once, as lost.
        msg.ack();
        framesLate.inc();
        release();
        return;
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
      // Hubble's metrics: labels resolved while the flows are hot, applied once stored.
      const hubbleCounts = "batch" in result ? hubble?.metrics.stage(result.batch) : undefined;
      let bytes: Uint8Array;
      if ("batch" in result) {
        result.batch.source = frameSource(frame);
        bytes = encodeFlowBatch(result.batch);
      } else {
        bytes = result.bytes;
      }
      js.publish(subjects.flows(frame.nodeName), bytes, {
        msgID: batchMsgId(frame.bootId, frame.partition, frame.seq),
        timeout: 2000,
      }).then(
        (ack) => {
          msg.ack();
          if (ack.duplicate) batchesDuplicate.inc();
          batchesOut.inc();
          flowsOut.inc(flows);
          // Hubble's metrics count each stored batch once (a duplicate was counted before).
          if (!ack.duplicate && hubbleCounts) hubble?.metrics.commit(hubbleCounts);
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

    const publishGap = (gap: SequenceGap): void => {
      const origin = origins.get(gap.key);
      if (origin === undefined) return;
      seqGaps.inc(Number(gap.items));
      lost.inc({ where: "bus" }, Number(gap.records));
      log.warn(
        {
          node: origin.node,
          partition: origin.partition,
          fromSeq: String(gap.fromSeq),
          frames: String(gap.items),
          records: String(gap.records),
        },
        "raw frames never arrived; their records are reported lost",
      );
      for (const { seq, batch } of gapBatches(gap, origin, Date.now())) {
        js.publish(subjects.flows(origin.node), encodeFlowBatch(batch), {
          msgID: batchMsgId(origin.bootId, origin.partition, seq),
          timeout: 2000,
        }).then(
          (ack) => {
            if (!ack.duplicate) hubble?.metrics.observe(batch);
          },
          (err: unknown) => {
            // The observer finds the hole itself after its own hold: still counted, once.
            errors.inc({ kind: "publish" });
            publishLog.note(errorReason(err), { node: origin.node, seq: String(seq) });
          },
        );
      }
    };
    const gapTimer = setInterval(() => {
      for (const gap of ledger.expire()) publishGap(gap);
      // Keys the ledger forgot (idle, e.g. an earlier collector boot) need no origin either.
      for (const key of origins.keys()) if (!ledger.tracks(key)) origins.delete(key);
    }, 500);
    cleanups.push(() => clearInterval(gapTimer));

    const readers = new Map<number, PartitionReader>();
    const startReader = async (p: number): Promise<void> => {
      const reader = await startPartitionReader({
        bus: b,
        partition: p,
        durable: partitionDurable(config.queueGroup, p),
        ackWaitMs: RAW_ACK_WAIT_MS,
        maxAckPending: MAX_ACK_PENDING,
        handle: async (msg) => {
          await gate.take();
          try {
            handle(msg, p);
          } catch (err) {
            release();
            errors.inc({ kind: "internal" });
            log.error({ err }, "raw frame handling failed");
          }
        },
        failed: (err) => {
          errors.inc({ kind: "subscription" });
          pullLog.note(errorReason(err), { partition: p });
        },
      });
      readers.set(p, reader);
    };
    const holder = holderId(config.nodeName);
    const owner = new PartitionOwnership({
      get kv(): KV {
        if (leases === undefined) throw new Error("lease bucket not open");
        return leases;
      },
      holder,
      partitions: partitionCount,
      ttlMs: DEFAULT_LEASE_TTL_MS,
      log,
      start: startReader,
      async stop(p) {
        const reader = readers.get(p);
        readers.delete(p);
        await reader?.stop();
        // Its holes are the next owner's to see (or the observer's).
        ledger.forget((key) => key.endsWith(`/${p}`));
        for (const key of origins.keys()) if (key.endsWith(`/${p}`)) origins.delete(key);
      },
      changed(change) {
        ownershipChanges.inc({ change });
        partitionsOwned.set(ownership?.owned().length ?? 0);
      },
      failed(what, err) {
        errors.inc({ kind: `lease_${what}` });
        leaseLog.note(`${what}: ${errorReason(err)}`, { what });
      },
    });
    ownership = owner;
    await owner.start();
    // Container lifecycle for direct subscribers and the observer: one publisher among
    // replicas, the holder of partition 0, which announces the containers when it gains it.
    const containerEvents = publishContainerEvents({
      nc: b.nc,
      node: config.nodeName,
      containers: processes.containers,
      publisher: () => owner.holds(0),
      metrics,
    });
    const offOwnerChange = owner.onChange((_change, p) => {
      if (p === 0) containerEvents.recheck();
    });
    cleanups.push(() => {
      offOwnerChange();
      containerEvents.stop();
    });
    const unownedTimer = setInterval(() => {
      if (!owner.holds(0)) return;
      findUnownedFrames(b, partitionCount).then(
        (u) => {
          framesUnowned.set(u.frames);
          if (u.frames > 0) {
            unownedLog.note(
              `partitions ${u.partitions.join(",")} (--partitions is ${partitionCount})`,
              { partitions: u.partitions },
              u.frames,
            );
          }
        },
        () => errors.inc({ kind: "unowned_check" }),
      );
    }, UNOWNED_CHECK_MS);
    cleanups.push(() => clearInterval(unownedTimer));
    cleanups.push(async () => {
      ready = false;
      await owner.stop();
      const deadline = Date.now() + 5000;
      while (gate.count > 0 && Date.now() < deadline) await Bun.sleep(10);
      malformedLog.flush();
      publishLog.flush();
      leaseLog.flush();
      pullLog.flush();
    });
    ready = true;
    log.info(
      {
        stream: RAW_STREAM,
        holder,
        partitions: partitionCount,
        owned: owner.owned().length,
        members: owner.members,
      },
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
