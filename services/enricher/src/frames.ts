import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { DecodeContext, PayloadSink } from "@periscope/flow";
import {
  decodeDebugEvent,
  decodeDropFlow,
  decodePolicyVerdictFlow,
  decodeTraceFlow,
  messageFactory,
} from "@periscope/flow";
import type { EndpointInfo } from "@periscope/model";
import {
  type Flow,
  type FlowBatch,
  FlowBatchSchema,
  type GetDebugEventsResponse,
  GetDebugEventsResponseSchema,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
  LostEventSchema,
  LostEventSource,
  type RawFrame,
} from "@periscope/proto";
import {
  decodeDebugRecord,
  decodeDropRecord,
  decodePolicyVerdictRecord,
  decodeRawFrame,
  decodeRecordType,
  decodeTraceRecord,
  MalformedRecordError,
  RECORD_TYPE_DEBUG,
  RECORD_TYPE_DROP,
  RECORD_TYPE_POLICY_VERDICT,
  RECORD_TYPE_SOCK_OWNER,
  RECORD_TYPE_TRACE,
  rawFrameRecords,
  readFlowHash,
} from "@periscope/wire";
import { labelIdentity } from "./identity.ts";
import type { L7Tracker } from "./l7/tracker.ts";
import { attachProcess, type FlowProcesses } from "./process/flow-join.ts";

const newResponse = messageFactory(GetFlowsResponseSchema);

/**
 * Turns one kernel record of a known type into a flow. Throws MalformedRecordError
 * (from @periscope/wire) when the record's layout is wrong, anything else when the
 * captured packet cannot be decoded.
 */
type RecordDecoder = (
  bytes: Uint8Array,
  ctx: DecodeContext,
  deps: FrameDeps,
  nowMs: number,
  l7Out: Flow[],
) => Flow;

/** Decoders by record type (pscope_hdr.type); other types are counted as unknown. */
const RECORD_DECODERS = new Map<number, RecordDecoder>([
  [
    RECORD_TYPE_TRACE,
    // trace_reason and is_reply come from the kernel's connection table
    (bytes, ctx, deps, nowMs, l7Out) => {
      const rec = decodeTraceRecord(bytes);
      if (deps.l7 === undefined) return decodeTraceFlow(rec, ctx);
      const sink: PayloadSink = {};
      const flow = decodeTraceFlow(rec, ctx, sink);
      deps.l7.fillNames(flow, nowMs);
      // L7 flows accompany the packet flow they were read from (payload problems are counted, never thrown)
      for (const f of deps.l7.observe(flow, rec.data, sink.payload, rec.origLen, nowMs)) {
        l7Out.push(f);
      }
      return flow;
    },
  ],
  [
    RECORD_TYPE_DROP,
    (bytes, ctx, deps) =>
      decodeDropFlow(decodeDropRecord(bytes), {
        ...ctx,
        dropReasonName: (reason) => deps.dropReasonName?.(ctx.nodeName, reason),
        dropLocationName: (location) => deps.dropLocation?.(ctx.nodeName, location),
      }),
  ],
  [
    RECORD_TYPE_POLICY_VERDICT,
    (bytes, ctx, deps) =>
      decodePolicyVerdictFlow(decodePolicyVerdictRecord(bytes), {
        ...ctx,
        ...(deps.policyRule ? { policyRule: deps.policyRule } : {}),
      }),
  ],
]);

/**
 * A debug record carries no address, only the flow hash: its source endpoint is the
 * source of the frame's first flow with that hash (the packet that made the kernel
 * report it travels in the same frame), when that endpoint is known.
 */
function setDebugSources(
  debug: GetDebugEventsResponse[],
  flows: GetFlowsResponse[],
  records: Uint8Array[],
): void {
  const byHash = new Map<number, Flow["source"]>();
  flows.forEach((r, i) => {
    const bytes = records[i];
    if (r.responseTypes.case !== "flow" || bytes === undefined) return;
    const src = r.responseTypes.value.source;
    let hash = 0;
    try {
      hash = readFlowHash(bytes);
    } catch {
      return; // a record type without a flow hash names no debug source
    }
    if (hash !== 0 && src?.podName && !byHash.has(hash)) byHash.set(hash, src);
  });
  for (const d of debug) {
    const ev = d.debugEvent;
    if (ev?.hash !== undefined && ev.source === undefined) {
      const src = byHash.get(ev.hash);
      if (src) ev.source = src;
    }
  }
}

function compareTime(a: Timestamp | undefined, b: Timestamp | undefined): number {
  const as = a?.seconds ?? 0n;
  const bs = b?.seconds ?? 0n;
  if (as !== bs) return as < bs ? -1 : 1;
  return (a?.nanos ?? 0) - (b?.nanos ?? 0);
}

/** Why a record inside a good frame was not turned into a flow. */
export type RecordFailure = "malformed_record" | "undecodable_packet" | "unknown_record_type";

/** What processing one frame produced, for publishing and accounting. */
export interface FrameResult {
  readonly frame: RawFrame;
  /** Lost events reported by the collector, then flows in kernel time order, then a lost event for records that failed here. */
  readonly batch: FlowBatch;
  /** Flows in the batch, L7 flows included. */
  readonly flows: number;
  /** L7 flows among them (each accompanies the packet flow it was read from). */
  readonly l7Flows: number;
  /** Debug records decoded into `batch.debugEvents`. */
  readonly debugEvents: number;
  readonly failures: ReadonlyMap<RecordFailure, number>;
  /** First failure message per kind, for logs. */
  readonly failureSamples: ReadonlyMap<RecordFailure, string>;
}

/** Lookups and state the decoder needs from the outside world. */
export interface FrameDeps {
  endpoint(ip: string): EndpointInfo | undefined;
  /** Name of a device on `node`, by the netns cookie and ifindex in the record. */
  interfaceName?(node: string, netnsCookie: bigint, ifindex: number): string | undefined;
  /** Name of a kernel drop reason value on `node` (each kernel numbers them its own way). */
  dropReasonName?(node: string, reason: number): string | undefined;
  /** `symbol+0xoffset` of a kernel drop location on `node`, once that node named it. */
  dropLocation?(node: string, location: bigint): string | undefined;
  /** Policy and rule name of a policy rule id (ids are unique over all policies). */
  policyRule?(id: number): { readonly policy: string; readonly rule: string } | undefined;
  /** Flow UUID generator; random v4 UUIDs when absent (tests pin it). */
  uuid?(): string;
  /** DNS / HTTP parsing and the DNS name cache; no L7 flows and no names when absent. */
  l7?: L7Tracker;
  /** Socket owners joined to flows (`Flow.extensions`); socket-owner records are skipped when absent. */
  processes?: FlowProcesses;
}

function lostResponse(
  node: string,
  source: LostEventSource,
  count: bigint,
  atMs: number,
  cpu?: number,
): GetFlowsResponse {
  return create(GetFlowsResponseSchema, {
    nodeName: node,
    time: timestampFromMs(atMs),
    responseTypes: {
      case: "lostEvents",
      value: create(LostEventSchema, {
        source,
        numEventsLost: count,
        ...(cpu !== undefined ? { cpu } : {}),
      }),
    },
  });
}

/** One LostEvent per CPU of the frame's kernel loss, plus one without a CPU for any rest. */
function kernelLostResponses(frame: RawFrame, atMs: number): GetFlowsResponse[] {
  const out: GetFlowsResponse[] = [];
  let attributed = 0n;
  for (const l of frame.kernelLosses) {
    if (l.count <= 0n) continue;
    attributed += l.count;
    out.push(
      lostResponse(frame.nodeName, LostEventSource.PERF_EVENT_RING_BUFFER, l.count, atMs, l.cpu),
    );
  }
  const rest = frame.kernelLost - attributed;
  if (rest > 0n) {
    out.push(lostResponse(frame.nodeName, LostEventSource.PERF_EVENT_RING_BUFFER, rest, atMs));
  }
  return out;
}

/** Per-frame lookups, caches and failure counts shared by the record decoders. */
export interface FrameScope {
  readonly frame: RawFrame;
  readonly node: string;
  /** When the collector sealed the frame, ms (now when it did not say). */
  readonly sealedMs: number;
  readonly nowMs: number;
  readonly ctx: DecodeContext;
  /** Interface name by netns cookie and ifindex, looked up once per frame ("" when unknown). */
  interfaceName(cookie: bigint, ifindex: number): string;
  readonly failures: Map<RecordFailure, number>;
  readonly samples: Map<RecordFailure, string>;
  /** Counts a failed record by kind, keeping the first message. */
  fail(kind: RecordFailure, err: unknown): void;
}

/**
 * Decodes a RawFrame and sets up what decoding its records needs. Throws
 * MalformedFrameError (from @periscope/wire) when the frame itself is unusable.
 */
export function openFrame(data: Uint8Array, deps: FrameDeps): FrameScope {
  const frame: RawFrame = decodeRawFrame(data);
  const node = frame.nodeName;
  // One lookup per address per frame: a frame is one moment of the registry, and
  // returning the same object lets decodeTraceFlow reuse the Endpoint it built.
  const endpoints = new Map<string, EndpointInfo | undefined>();
  // Interface names per netns cookie and ifindex, also looked up once per frame.
  const ifNames = new Map<bigint, Map<number, string>>();
  const interfaceName = (cookie: bigint, ifindex: number): string => {
    let names = ifNames.get(cookie);
    if (names === undefined) {
      names = new Map();
      ifNames.set(cookie, names);
    }
    let name = names.get(ifindex);
    if (name === undefined) {
      name = deps.interfaceName?.(node, cookie, ifindex) ?? "";
      names.set(ifindex, name);
    }
    return name;
  };
  const ctx: DecodeContext = {
    nodeName: node,
    bootToRealtimeNs: frame.bootToRealtimeNs,
    ...(deps.uuid ? { uuid: deps.uuid } : {}),
    ...(deps.interfaceName ? { ifName: (ifindex, cookie) => interfaceName(cookie, ifindex) } : {}),
    endpoint: (ip) => {
      if (endpoints.has(ip)) return endpoints.get(ip);
      const found = deps.endpoint(ip);
      const ep = found && {
        ...found,
        identity: found.identity ?? labelIdentity(found.namespace, found.labels),
      };
      endpoints.set(ip, ep);
      return ep;
    },
  };
  const failures = new Map<RecordFailure, number>();
  const samples = new Map<RecordFailure, string>();
  return {
    frame,
    node,
    sealedMs: Number(frame.sealedUnixNs / 1_000_000n) || Date.now(),
    nowMs: Date.now(),
    ctx,
    interfaceName,
    failures,
    samples,
    fail(kind, err) {
      failures.set(kind, (failures.get(kind) ?? 0) + 1);
      if (!samples.has(kind)) samples.set(kind, err instanceof Error ? err.message : String(err));
    },
  };
}

/**
 * Remembers the socket owners among a frame's records before its packets are written (an
 * owner is reported before its socket's first packet, but may sit later in the frame).
 */
export function noteOwners(
  records: readonly Uint8Array[],
  deps: FrameDeps,
  fail: (kind: "malformed_record", err: unknown) => void,
): void {
  const join = deps.processes;
  for (const bytes of records) {
    if (bytes[0] !== RECORD_TYPE_SOCK_OWNER) continue;
    try {
      join?.noteOwner(bytes);
    } catch (err) {
      fail("malformed_record", err);
    }
  }
}

/**
 * The flow of one trace, drop or policy verdict record (`type`, from its header),
 * with DNS names filled in; L7 flows read from it are pushed to `l7Out`. Returns
 * undefined for a type without a decoder. Throws like a RecordDecoder.
 */
export function decodeRecordFlow(
  type: number,
  bytes: Uint8Array,
  scope: FrameScope,
  deps: FrameDeps,
  l7Out: Flow[],
): Flow | undefined {
  const decode = RECORD_DECODERS.get(type);
  if (decode === undefined) return undefined;
  const f = decode(bytes, scope.ctx, deps, scope.nowMs, l7Out);
  if (type !== RECORD_TYPE_TRACE) deps.l7?.fillNames(f, scope.nowMs);
  // Trace, drop and policy verdict records all carry the netns cookie where the join reads
  // it: a dropped packet carries the process whose socket sent it (or was to receive it).
  if (deps.processes !== undefined) {
    attachProcess(deps.processes, f, bytes);
    for (const l7 of l7Out) attachProcess(deps.processes, l7, bytes);
  }
  return f;
}

/** A GetFlowsResponse carrying `flow`, as the batch holds it. */
export function flowResponse(node: string, flow: Flow): GetFlowsResponse {
  const r = newResponse();
  r.nodeName = node;
  r.time = flow.time;
  r.responseTypes = { case: "flow", value: flow };
  return r;
}

/** Lost events for what the collector and kernel reported lost before the frame. */
export function frameLostResponses(frame: RawFrame, sealedMs: number): GetFlowsResponse[] {
  const out = frame.kernelLost > 0n ? kernelLostResponses(frame, sealedMs) : [];
  if (frame.collectorLost > 0n) {
    out.push(
      lostResponse(
        frame.nodeName,
        LostEventSource.OBSERVER_EVENTS_QUEUE,
        frame.collectorLost,
        sealedMs,
      ),
    );
  }
  return out;
}

/** The lost event for records of the frame that failed here, if any failed. */
export function failedRecordsResponse(scope: FrameScope): GetFlowsResponse | undefined {
  let failed = 0;
  for (const n of scope.failures.values()) failed += n;
  if (failed === 0) return undefined;
  return lostResponse(
    scope.node,
    LostEventSource.UNKNOWN_LOST_EVENT_SOURCE,
    BigInt(failed),
    scope.sealedMs,
  );
}

/**
 * Decode one RawFrame into a FlowBatch. Throws MalformedFrameError (from
 * @periscope/wire) when the frame itself is unusable. Records that fail are counted by
 * kind and reported as one lost event per frame, never thrown: one bad
 * record must not cost the rest of the frame.
 */
export function processFrame(data: Uint8Array, deps: FrameDeps): FrameResult {
  const scope = openFrame(data, deps);
  const { frame, node, ctx, fail, failures, samples } = scope;
  const responses = frameLostResponses(frame, scope.sealedMs);

  let flows = 0;
  let l7Flows = 0;
  const l7Out: Flow[] = [];
  const flowResponses: GetFlowsResponse[] = [];
  const debugResponses: GetDebugEventsResponse[] = [];
  /** The record each of flowResponses came from (same index), for debug sources. */
  const flowRecords: Uint8Array[] = [];
  const split = rawFrameRecords(frame);
  if (split.malformed > 0) {
    failures.set("malformed_record", split.malformed);
    samples.set("malformed_record", split.reason ?? "packed_records unreadable");
  }
  noteOwners(split.records, deps, fail);
  for (const bytes of split.records) {
    let type: number;
    try {
      type = decodeRecordType(bytes);
    } catch (err) {
      fail("malformed_record", err);
      continue;
    }
    if (type === RECORD_TYPE_SOCK_OWNER) continue;
    if (type === RECORD_TYPE_DEBUG) {
      // Debug records are no flows: they go to the batch's debug_events, one each.
      try {
        const { event, time } = decodeDebugEvent(decodeDebugRecord(bytes), ctx);
        debugResponses.push(
          create(GetDebugEventsResponseSchema, { debugEvent: event, nodeName: node, time }),
        );
      } catch (err) {
        fail("malformed_record", err);
      }
      continue;
    }
    let flow: Flow | undefined;
    l7Out.length = 0;
    try {
      flow = decodeRecordFlow(type, bytes, scope, deps, l7Out);
    } catch (err) {
      fail(err instanceof MalformedRecordError ? "malformed_record" : "undecodable_packet", err);
      continue;
    }
    if (flow === undefined) {
      fail("unknown_record_type", new Error(`record type ${type}`));
      continue;
    }
    flowResponses.push(flowResponse(node, flow));
    flowRecords.push(bytes);
    flows++;
    for (const f of l7Out) {
      flowResponses.push(flowResponse(node, f));
      flowRecords.push(bytes);
      flows++;
      l7Flows++;
    }
  }
  if (debugResponses.length > 0) setDebugSources(debugResponses, flowResponses, flowRecords);
  // Records from different CPUs can reach the ring a few ns out of timestamp
  // order; a stable sort keeps each batch in kernel time order.
  flowResponses.sort((a, b) => compareTime(a.time, b.time));
  responses.push(...flowResponses);
  const failedLost = failedRecordsResponse(scope);
  if (failedLost !== undefined) responses.push(failedLost);
  return {
    frame,
    batch: create(FlowBatchSchema, { responses, debugEvents: debugResponses }),
    flows,
    l7Flows,
    debugEvents: debugResponses.length,
    failures,
    failureSamples: samples,
  };
}
