import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { rpcCodeLabel } from "@periscope/model";
import type { Metrics } from "@periscope/telemetry";
import type { Counter, Gauge } from "prom-client";
import type { StreamSlots } from "./stream-slots.ts";

/** The observer's own metrics (all `periscope_observer_*`). */
export interface ObserverMetrics {
  /** Flows received from the bus. */
  readonly flowsReceived: Counter;
  /** FlowBatch messages received from the bus (well-formed or not). */
  readonly batchesReceived: Counter;
  /** Errors by kind, e.g. `malformed_batch`. */
  readonly errors: Counter<"kind">;
  /** Events lost by where: `ring_buffer` = overwritten before a follower read them. */
  readonly eventsLost: Counter<"where">;
  /** Finished RPCs by method and status code (`ok`, `invalid_argument`, `canceled`, …). */
  readonly requests: Counter<"method" | "code">;
  /** Server streams currently open. */
  readonly activeStreams: Gauge;
  /** Server streams refused with ResourceExhausted: the concurrent stream cap was reached. */
  readonly streamsRefused: Counter;
  /** Entries currently held in the ring. */
  readonly ringEntries: Gauge;
}

/** Registers the observer's metrics in `metrics` (one call per registry). */
export function createObserverMetrics(metrics: Metrics): ObserverMetrics {
  return {
    flowsReceived: metrics.counter("flows_received_total", "Flows received from the bus"),
    batchesReceived: metrics.counter("batches_received_total", "FlowBatch messages received"),
    errors: metrics.counter("errors_total", "Errors by kind", ["kind"]),
    eventsLost: metrics.counter("events_lost_total", "Events lost, by where", ["where"]),
    requests: metrics.counter("requests_total", "Finished RPCs by method and code", [
      "method",
      "code",
    ]),
    activeStreams: metrics.gauge("active_streams", "Server streams currently open"),
    streamsRefused: metrics.counter(
      "streams_refused_total",
      "Server streams refused with ResourceExhausted because the concurrent stream cap was reached",
    ),
    ringEntries: metrics.gauge("ring_entries", "Events currently held in the flow ring"),
  };
}

/**
 * The code of a call whose signal aborted: the reason's code when it is a ConnectError
 * (a client's RST_STREAM CANCEL is `Canceled`, a deadline `DeadlineExceeded`), else
 * `Canceled`.
 */
function abortedCode(signal: AbortSignal): Code {
  const reason: unknown = signal.reason;
  return reason instanceof ConnectError ? reason.code : Code.Canceled;
}

/**
 * Counts every finished RPC by method and code and tracks open server streams. A stream
 * the client abandons counts as `canceled` (like grpc-go), also when the handler noticed
 * the cancellation and returned normally, as a follow stream does.
 */
export function metricsInterceptor(m: ObserverMetrics): Interceptor {
  return (next) => async (req) => {
    const method = req.method.name;
    const done = (code: string): void => {
      m.requests.inc({ method, code });
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      done(
        rpcCodeLabel(req.signal.aborted ? abortedCode(req.signal) : ConnectError.from(err).code),
      );
      throw err;
    }
    if (!res.stream) {
      done("ok");
      return res;
    }
    const inner = res.message;
    async function* counted(): AsyncGenerator<
      typeof inner extends AsyncIterable<infer T> ? T : never
    > {
      m.activeStreams.inc();
      let code = "canceled";
      try {
        yield* inner;
        code = req.signal.aborted ? rpcCodeLabel(abortedCode(req.signal)) : "ok";
      } catch (err) {
        code = rpcCodeLabel(
          req.signal.aborted ? abortedCode(req.signal) : ConnectError.from(err).code,
        );
        throw err;
      } finally {
        m.activeStreams.dec();
        done(code);
      }
    }
    return { ...res, message: counted() };
  };
}

/**
 * Holds one of `slots` for each server stream while it is open; beyond the cap the call
 * ends with ResourceExhausted before the handler runs and `m.streamsRefused` counts it.
 * The slot is given back when the stream ends, fails or the client goes away.
 */
export function streamLimitInterceptor(slots: StreamSlots, m: ObserverMetrics): Interceptor {
  return (next) => async (req) => {
    if (req.method.methodKind !== "server_streaming") return next(req);
    const slot = slots.tryAcquire();
    if (slot === undefined) {
      m.streamsRefused.inc();
      throw slots.refusal();
    }
    const release = slot;
    req.signal.addEventListener("abort", release, { once: true });
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      release();
      throw err;
    }
    if (!res.stream) {
      release();
      return res;
    }
    const inner = res.message;
    async function* held(): AsyncGenerator<
      typeof inner extends AsyncIterable<infer T> ? T : never
    > {
      try {
        yield* inner;
      } finally {
        release();
      }
    }
    return { ...res, message: held() };
  };
}
