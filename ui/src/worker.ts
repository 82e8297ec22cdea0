/**
 * The stream worker: follows GetFlows over Connect (same origin, binary), decodes, feeds
 * the graph model and counters ({@link FlowStore}), polls ServerStatus, finds the oldest
 * flow the observer holds, and posts the page a {@link Snapshot} at most every
 * {@link SNAPSHOT_MS} and only after the page said it drew the previous one. So the
 * page's main thread does no per-flow work at any rate. Messages: ui/src/protocol.ts.
 */
import { toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { type Flow, FlowSchema } from "@periscope/proto/src/gen/flow/flow_pb.ts";
import { Observer } from "@periscope/proto/src/gen/observer/observer_pb.ts";
import { buildWhitelist, FilterError } from "./filter.ts";
import { flowTimeMs } from "./format.ts";
import {
  type FromWorker,
  SNAPSHOT_MS,
  type StartRequest,
  type StatusInfo,
  type ToWorker,
} from "./protocol.ts";
import { SnapshotBuilder } from "./snapshot.ts";
import { FlowStore } from "./store.ts";
import type { ViewQuery } from "./url.ts";
import { useFastUtf8 } from "./utf8.ts";

useFastUtf8();

/** The worker global as far as this file uses it. */
const scope = self as unknown as {
  postMessage(m: FromWorker): void;
  onmessage: ((ev: MessageEvent<ToWorker>) => void) | null;
  location: { origin: string };
};

/** How often ServerStatus is asked, ms. */
const STATUS_MS = 2000;
/** How often idle edges are evicted, ms. */
const EVICT_MS = 1000;
/**
 * Longest the stream loop runs before it lets timers and the page's messages in, ms.
 * Connect hands over every buffered message in microtasks, so without this a backlog
 * would hold back snapshots until it is all decoded.
 */
const SLICE_MS = 8;

/** Resolves in a new task (after pending timers and messages), without setTimeout's clamp. */
const nextTask = (() => {
  const ch = new MessageChannel();
  const waiting: (() => void)[] = [];
  ch.port1.onmessage = () => waiting.shift()?.();
  return (): Promise<void> =>
    new Promise((resolve) => {
      waiting.push(resolve);
      ch.port2.postMessage(0);
    });
})();

let auth: string | undefined;
/** Set while the observer refuses the credentials: no retries until new ones come. */
let refused = false;

const withAuth: Interceptor = (next) => (req) => {
  if (auth !== undefined) req.header.set("Authorization", auth);
  return next(req);
};
const client = createClient(
  Observer,
  createConnectTransport({
    baseUrl: scope.location.origin,
    useBinaryFormat: true,
    // Unknown fields are never shown: not keeping them makes decoding cheaper.
    binaryOptions: { readUnknownFields: false },
    interceptors: [withAuth],
  }),
);

const store = new FlowStore();
const builder = new SnapshotBuilder(store);
let query: ViewQuery = { filter: "" };
let streamState = "connecting";
let status: StatusInfo | undefined;
let oldestMs: number | undefined;
let run: AbortController | undefined;
/** The page's number of the current start ({@link StartRequest.run}), sent with snapshots. */
let runNo = 0;
/** The page drew the last snapshot; the next may be posted. */
let pageReady = true;

/** Tells the page to ask for credentials when `err` is Unauthenticated; true if it was. */
function authFailed(err: unknown): boolean {
  const ce = ConnectError.from(err);
  if (ce.code !== Code.Unauthenticated) return false;
  if (!refused) {
    refused = true;
    scope.postMessage({ type: "auth", message: ce.rawMessage, refused: auth !== undefined });
  }
  return true;
}

/** Streams flows for the current query into the store until `signal` aborts. */
async function runStream(signal: AbortSignal): Promise<void> {
  const whitelist = buildWhitelist(query.filter);
  const history = query.since !== undefined;
  const req = {
    whitelist,
    follow: !history,
    ...(history
      ? {
          since: timestampFromMs(query.since as number),
          ...(query.until !== undefined ? { until: timestampFromMs(query.until) } : {}),
        }
      : { number: 200n }),
  };
  while (!signal.aborted) {
    try {
      streamState = history ? "loading window" : "live";
      let sliceStart = performance.now();
      let n = 0;
      for await (const res of client.getFlows(req, { signal })) {
        // A response already buffered when a newer query aborted this stream belongs to the
        // old query: it must not reach the store the new one starts from.
        if (signal.aborted) return;
        const r = res.responseTypes;
        if (r.case === "flow") store.onFlow(r.value);
        else if (r.case === "lostEvents") store.onLost(r.value);
        if ((++n & 63) === 0 && performance.now() - sliceStart >= SLICE_MS) {
          await nextTask();
          sliceStart = performance.now();
        }
      }
      if (signal.aborted) return;
      if (history) {
        streamState = `window: ${store.received} flows`;
        return;
      }
    } catch (err) {
      if (signal.aborted) return;
      if (authFailed(err)) {
        streamState = "login required";
        return;
      }
      streamState = `disconnected: ${err instanceof Error ? err.message : String(err)}; retrying`;
    }
    await new Promise((r) => setTimeout(r, 1000));
    // Resume where the stream broke off: from the newest flow seen (its repeats are skipped).
    Object.assign(req, { number: 0n, since: timestampFromMs(store.lastTimeMs || Date.now()) });
  }
}

/** Asks ServerStatus once. */
async function pollStatus(): Promise<void> {
  if (refused) return;
  const asked = auth;
  try {
    const s = await client.serverStatus({});
    // An answer to other credentials (the page signed out or in meanwhile) is not shown.
    if (auth !== asked) return;
    status = {
      connected: s.numConnectedNodes ?? 0,
      unavailable: s.numUnavailableNodes ?? 0,
      unavailableNodes: [...s.unavailableNodes],
      observerRate: s.flowsRate,
    };
  } catch (err) {
    if (auth !== asked) return;
    status = undefined;
    authFailed(err);
  }
}

/** The time of the oldest flow the observer holds (its history included), if any. */
async function findOldest(signal: AbortSignal): Promise<void> {
  try {
    const req = { since: timestampFromMs(1000), first: true, number: 1n };
    for await (const res of client.getFlows(req, { signal })) {
      if (signal.aborted) return;
      if (res.responseTypes.case === "flow") {
        const t = flowTimeMs(res.responseTypes.value);
        if (t > 0) oldestMs = t;
        return;
      }
    }
  } catch (err) {
    if (!signal.aborted) authFailed(err);
  }
}

/** (Re)starts everything for a new query or new credentials. */
function start(m: StartRequest): void {
  run?.abort();
  const ac = new AbortController();
  run = ac;
  runNo = m.run;
  query = m.query;
  if (m.auth !== auth) {
    // What the observer said to other credentials (or to none) is not shown to these.
    status = undefined;
    oldestMs = undefined;
  }
  auth = m.auth;
  refused = false;
  store.reset();
  streamState = "connecting";
  runStream(ac.signal).catch((err: unknown) => {
    streamState = `error: ${err instanceof Error ? err.message : String(err)}`;
  });
  void pollStatus();
  void findOldest(ac.signal);
}

/** The flow as protobuf JSON (bigint-safe fallback when an Any cannot be resolved). */
function flowJson(f: Flow): string {
  try {
    return toJsonString(FlowSchema, f, { prettySpaces: 2 });
  } catch {
    return JSON.stringify(f, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2);
  }
}

scope.onmessage = (ev) => {
  const m = ev.data;
  switch (m.type) {
    case "start":
      start(m);
      break;
    case "filter": {
      let error: string | undefined;
      try {
        buildWhitelist(m.text);
      } catch (err) {
        error = err instanceof FilterError ? err.message : String(err);
      }
      scope.postMessage({
        type: "filter",
        text: m.text,
        ...(error !== undefined ? { error } : {}),
      });
      break;
    }
    case "pause":
      store.setPaused(m.paused);
      break;
    case "view":
      builder.setView(m.topId, m.count);
      break;
    case "relayout":
      builder.relayout();
      break;
    case "ready":
      pageReady = true;
      break;
    case "flow": {
      const f = store.flowById(m.id);
      scope.postMessage({ type: "flow", id: m.id, ...(f ? { json: flowJson(f) } : {}) });
      break;
    }
  }
};

let evictedMs = 0;
/** The last posted snapshot's counters and states, to skip posting one that says nothing new. */
let lastSaid = "";
setInterval(() => {
  if (!pageReady) return;
  const now = Date.now();
  if (now - evictedMs >= EVICT_MS && !store.paused && query.since === undefined) {
    store.graph.evictIdle(now);
    evictedMs = now;
  }
  const snap = builder.build(now, streamState, status, oldestMs);
  const said = JSON.stringify([snap.counters, snap.stream, snap.status, snap.oldestMs]);
  if (!snap.reset && snap.graph === undefined && snap.rows === undefined && said === lastSaid) {
    return;
  }
  lastSaid = said;
  pageReady = false;
  scope.postMessage({ ...snap, run: runNo });
}, SNAPSHOT_MS);
setInterval(() => void pollStatus(), STATUS_MS);
