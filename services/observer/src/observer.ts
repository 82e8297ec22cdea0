import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { compileFilters, FilterError } from "@periscope/flow";
import {
  type Flow,
  type GetAgentEventsResponse,
  type GetDebugEventsResponse,
  type GetFlowsRequest,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
  GetNamespacesResponseSchema,
  GetNodesResponseSchema,
  LostEventSchema,
  LostEventSource,
  NamespaceSchema,
  type Observer,
  ServerStatusResponseSchema,
} from "@periscope/proto";
import type { Logger } from "@periscope/telemetry";
import { OBSERVER_DEFAULTS } from "./config.ts";
import { StoredEvent } from "./event.ts";
import { responseMasker } from "./field-mask.ts";
import type { ObserverMetrics } from "./metrics.ts";
import { listNodes } from "./nodes.ts";
import { applyPresence, type PresenceSource } from "./presence.ts";
import { type EventQuery, QueryError, validateQuery } from "./query.ts";
import { tooManyFilters } from "./request-guard.ts";
import { type EventLog, readLog } from "./side-events.ts";
import type { FlowStore } from "./store.ts";
import { queryStore } from "./store-query.ts";

/** What the Observer service implementation needs. */
export interface ObserverDeps {
  readonly store: FlowStore;
  /** This observer's node name; lost events it detects carry it. */
  readonly nodeName: string;
  /** Reported as ServerStatus.version, e.g. "periscope 0.1.0". */
  readonly version: string;
  readonly metrics?: ObserverMetrics | undefined;
  readonly log?: Logger | undefined;
  /** Which services are alive; ServerStatus and GetNodes count it in when present. */
  readonly presence?: PresenceSource | undefined;
  /** Most whitelist + blacklist filters per GetFlows (default {@link OBSERVER_DEFAULTS}). */
  readonly maxFilters?: number | undefined;
  /** How often peer.Notify looks for collectors that came or went, ms (default 250). */
  readonly peerPollMs?: number | undefined;
  /** Agent events served by GetAgentEvents (none when absent). */
  readonly agentEvents?: EventLog<GetAgentEventsResponse> | undefined;
  /** Debug events served by GetDebugEvents (none when absent). */
  readonly debugEvents?: EventLog<GetDebugEventsResponse> | undefined;
}

/** Runs `validateQuery`, turning a {@link QueryError} into InvalidArgument. */
function checkQuery(q: EventQuery): void {
  try {
    validateQuery(q);
  } catch (err) {
    if (err instanceof QueryError) throw new ConnectError(err.message, Code.InvalidArgument);
    throw err;
  }
}

/**
 * Compiles the request's filters once; a bad filter becomes InvalidArgument naming the
 * field, and so do more than `maxFilters` filters (each one is tried on every event
 * scanned). Without filters every event matches and none needs decoding. A flow that does
 * not decode cannot be matched: it is skipped and `onUndecodable` told.
 */
function buildMatcher(
  req: GetFlowsRequest,
  maxFilters: number,
  onUndecodable: (ev: StoredEvent) => void,
): (ev: StoredEvent) => boolean {
  if (req.whitelist.length === 0 && req.blacklist.length === 0) return () => true;
  const tooMany = tooManyFilters(req.whitelist.length, req.blacklist.length, maxFilters);
  if (tooMany) throw tooMany;
  let filter: ReturnType<typeof compileFilters>;
  try {
    filter = compileFilters(req.whitelist, req.blacklist);
  } catch (err) {
    if (err instanceof FilterError) {
      const msg = err.message.includes(err.field) ? err.message : `${err.field}: ${err.message}`;
      throw new ConnectError(msg, Code.InvalidArgument, undefined, undefined, err);
    }
    throw err;
  }
  return (ev) => {
    if (ev.kind !== "flow") return true;
    let flow: Flow | undefined;
    try {
      flow = ev.flow;
    } catch {
      // Ingest reads only the fields it needs; a flow whose other fields do not decode
      // cannot be matched against filters, so a filtered request does not get it.
      onUndecodable(ev);
      return false;
    }
    return flow === undefined || filter(flow);
  };
}

/**
 * One GetFlows answer: a stored event, sent as the bytes it was received as, or a message
 * made for this request (a masked flow, a lost event of this reader).
 */
export type FlowAnswer = StoredEvent | GetFlowsResponse;

/** One GetFlows request, checked and compiled: what it selects and what it sends. */
export interface GetFlowsPlan {
  /** Whether a flow passes the request's filters (undecodable flows do not, counted). */
  readonly match: (ev: StoredEvent) => boolean;
  /** What to send for a selected event; undefined when it is skipped (does not decode, counted). */
  answer(ev: StoredEvent): FlowAnswer | undefined;
  /** The LostEvent for `count` entries this reader lost to the ring writer (counted, logged). */
  lost(count: number): GetFlowsResponse;
}

/**
 * Checks `req` (InvalidArgument: bad query, filters, field mask or too many filters) and
 * compiles what serving it needs, before anything is sent.
 */
export function planGetFlows(deps: ObserverDeps, req: GetFlowsRequest): GetFlowsPlan {
  const { metrics, log } = deps;
  checkQuery(req);
  const undecodable = (ev: StoredEvent): void => {
    metrics?.errors.inc({ kind: "undecodable_flow" });
    log?.warn({ node: ev.nodeName }, "GetFlows skipped a flow that does not decode");
  };
  const match = buildMatcher(req, deps.maxFilters ?? OBSERVER_DEFAULTS.maxFilters, undecodable);
  const masked = req.fieldMask !== undefined && req.fieldMask.paths.length > 0;
  const toResponse = responseMasker(req.fieldMask);
  return {
    match,
    answer(ev) {
      if (!masked || ev.kind !== "flow") return ev;
      const out = toResponse(ev);
      if (out === undefined) undecodable(ev);
      return out;
    },
    lost(count) {
      metrics?.eventsLost.inc({ where: "ring_buffer" }, count);
      log?.warn({ lost: count }, "GetFlows follower lapped by the ring writer");
      return create(GetFlowsResponseSchema, {
        nodeName: deps.nodeName,
        time: timestampFromMs(Date.now()),
        responseTypes: {
          case: "lostEvents",
          value: create(LostEventSchema, {
            source: LostEventSource.HUBBLE_RING_BUFFER,
            numEventsLost: BigInt(count),
          }),
        },
      });
    },
  };
}

/**
 * GetFlows without its transport: the answers to `req` in order (`plan` checks it first,
 * throwing InvalidArgument before anything is sent). Both the Connect service and the
 * gRPC stream writer (fast-stream.ts) serve it, so they send the same messages.
 */
export function flowAnswers(
  deps: ObserverDeps,
  req: GetFlowsRequest,
  signal: AbortSignal,
  plan: GetFlowsPlan = planGetFlows(deps, req),
): AsyncGenerator<FlowAnswer, void, undefined> {
  return (async function* answers() {
    let sent = 0;
    for await (const step of queryStore(deps.store, req, plan.match, signal)) {
      if (step.kind === "lost") {
        yield plan.lost(step.count);
        continue;
      }
      const out = plan.answer(step.event);
      if (out === undefined) continue;
      sent++;
      yield out;
    }
    deps.log?.debug({ sent, follow: req.follow }, "GetFlows finished");
  })();
}

/** The message Connect sends for an answer (a stored event's bytes go out unchanged). */
function answerMessage(a: FlowAnswer): GetFlowsResponse {
  return a instanceof StoredEvent ? a.wire() : a;
}

/** Blocks until the client goes away or the store's ring is closed (shutdown). */
async function waitForEnd(store: FlowStore, ctx: HandlerContext): Promise<void> {
  await store.ring.waitFor(Number.POSITIVE_INFINITY, ctx.signal);
}

/** A stream without messages that ends once `done` resolves. */
function noEvents<T>(done: Promise<void>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]: () => ({
      next: async (): Promise<IteratorResult<T>> => {
        await done;
        return { done: true, value: undefined };
      },
    }),
  };
}

/**
 * The `observer.Observer` implementation over a {@link FlowStore}, with Hubble's
 * semantics for GetFlows (number/first/follow/since/until, whitelist − blacklist,
 * LostEvent with source HUBBLE_RING_BUFFER when a follower is lapped).
 */
export function createObserverService(deps: ObserverDeps): ServiceImpl<typeof Observer> {
  const { store } = deps;

  return {
    getFlows(req, ctx): AsyncIterable<GetFlowsResponse> {
      const answers = flowAnswers(deps, req, ctx.signal);
      // Stored bytes pass through only a binary codec; a JSON client (Connect JSON,
      // gRPC-Web JSON) needs the decoded message to print its fields.
      const json = (ctx.requestHeader.get("content-type") ?? "").includes("json");
      return (async function* messages() {
        for await (const a of answers) {
          if (!json || !(a instanceof StoredEvent)) {
            yield answerMessage(a);
            continue;
          }
          let msg: GetFlowsResponse;
          try {
            msg = a.resp;
          } catch {
            deps.metrics?.errors.inc({ kind: "undecodable_flow" });
            deps.log?.warn({ node: a.nodeName }, "GetFlows skipped a flow that does not decode");
            continue;
          }
          yield msg;
        }
      })();
    },

    getAgentEvents(req, ctx): AsyncIterable<GetAgentEventsResponse> {
      checkQuery(req);
      if (deps.agentEvents) return readLog(deps.agentEvents, req, ctx.signal);
      return noEvents(req.follow ? waitForEnd(store, ctx) : Promise.resolve());
    },

    getDebugEvents(req, ctx): AsyncIterable<GetDebugEventsResponse> {
      checkQuery(req);
      if (deps.debugEvents) return readLog(deps.debugEvents, req, ctx.signal);
      return noEvents(req.follow ? waitForEnd(store, ctx) : Promise.resolve());
    },

    serverStatus(_req, ctx) {
      const { connected, unavailable } = applyPresence(
        deps.presence,
        store.nodes(),
        ctx.responseHeader,
      );
      return create(ServerStatusResponseSchema, {
        numFlows: BigInt(store.ring.length),
        maxFlows: BigInt(store.ring.capacity),
        seenFlows: BigInt(store.seenFlows),
        uptimeNs: BigInt(Math.round(store.uptimeMs() * 1e6)),
        numConnectedNodes: connected.length,
        numUnavailableNodes: unavailable.length,
        unavailableNodes: unavailable.map((n) => n.name),
        version: deps.version,
        flowsRate: store.flowsRate(),
      });
    },

    getNodes() {
      return create(GetNodesResponseSchema, { nodes: listNodes(store, deps.presence) });
    },

    getNamespaces() {
      return create(GetNamespacesResponseSchema, {
        namespaces: store.namespaces().map((ns) => create(NamespaceSchema, ns)),
      });
    },
  };
}
