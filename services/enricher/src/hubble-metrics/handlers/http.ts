import { type Flow, type HTTP, L7FlowType, TrafficDirection } from "@periscope/proto";
import { contextLabelNames, contextLabelValues } from "../context.ts";
import type { HandlerDeps, HandlerFactory } from "../handler.ts";
import { TableCounter, TableHistogram } from "../table.ts";

/** Hubble's `reporter` label: `client` for egress, `server` for ingress, else `unknown`. */
function reporter(flow: Flow): string {
  if (flow.trafficDirection === TrafficDirection.EGRESS) return "client";
  if (flow.trafficDirection === TrafficDirection.INGRESS) return "server";
  return "unknown";
}

const seconds = (flow: Flow): number => Number(flow.l7?.latencyNs ?? 0n) / 1e9;

/** Labels after the context ones of a counter {@link recordResponse} adds to. */
const RESPONSE_LABELS = ["method", "protocol", "status", "reporter"] as const;

/** A counter of both handlers: `name{...ctx, ...labels}`. */
function httpCounter(
  { registry, limit, journal }: HandlerDeps,
  ctx: readonly string[],
  name: string,
  help: string,
  labels: readonly string[],
): TableCounter {
  return new TableCounter({
    name,
    help,
    labelNames: [...ctx, ...labels],
    registry,
    limit,
    journal,
  });
}

/** `hubble_http_request_duration_seconds{...context,method,reporter}`, as both handlers keep it. */
function requestDuration({ registry, limit, journal }: HandlerDeps, ctx: string[]): TableHistogram {
  return new TableHistogram({
    name: "hubble_http_request_duration_seconds",
    help: "Quantiles of HTTP request duration in seconds",
    labelNames: [...ctx, "method", "reporter"],
    registry,
    limit,
    journal,
  });
}

/**
 * Counts a response in `counter` by `[...context, method, protocol, status, reporter]` and
 * records its latency in `duration` by `[...context, method, reporter]`; `values` holds the
 * context label values on entry (and scratch after).
 */
function recordResponse(
  flow: Flow,
  http: HTTP,
  values: string[],
  counter: TableCounter,
  duration: TableHistogram,
): void {
  const n = values.length;
  const rep = reporter(flow);
  values.push(http.method, http.protocol, String(http.code), rep);
  counter.add(values);
  values.length = n;
  values.push(http.method, rep);
  duration.record(values, seconds(flow));
}

/**
 * Hubble's `http` handler: `hubble_http_requests_total{...context,method,protocol,reporter}`
 * per request, `hubble_http_responses_total{...context,method,protocol,status,reporter}`
 * and `hubble_http_request_duration_seconds{...context,method,reporter}` (request to
 * response latency) per response.
 */
export const httpHandler: HandlerFactory = (deps) => {
  const { context } = deps;
  const ctx = contextLabelNames(context);
  const requests = httpCounter(deps, ctx, "hubble_http_requests_total", "Count of HTTP requests", [
    "method",
    "protocol",
    "reporter",
  ]);
  const responses = httpCounter(
    deps,
    ctx,
    "hubble_http_responses_total",
    "Count of HTTP responses",
    RESPONSE_LABELS,
  );
  const duration = requestDuration(deps, ctx);
  const values: string[] = [];
  return {
    process(flow) {
      const l7 = flow.l7;
      if (l7?.record.case !== "http") return;
      const http = l7.record.value;
      values.length = 0;
      contextLabelValues(context, flow, values);
      if (l7.type === L7FlowType.REQUEST) {
        values.push(http.method, http.protocol, reporter(flow));
        requests.add(values);
      } else if (l7.type === L7FlowType.RESPONSE) {
        recordResponse(flow, http, values, responses, duration);
      }
    },
  };
};

/**
 * Hubble's `httpV2` handler: responses only, counted as their request (source and
 * destination context read from the response's destination and source):
 * `hubble_http_requests_total{...context,method,protocol,status,reporter}` and
 * `hubble_http_request_duration_seconds{...context,method,reporter}`.
 */
export const httpV2Handler: HandlerFactory = (deps) => {
  const { context } = deps;
  const ctx = contextLabelNames(context);
  const requests = httpCounter(
    deps,
    ctx,
    "hubble_http_requests_total",
    "Count of HTTP requests",
    RESPONSE_LABELS,
  );
  const duration = requestDuration(deps, ctx);
  const values: string[] = [];
  return {
    process(flow) {
      const l7 = flow.l7;
      if (l7?.record.case !== "http" || l7.type !== L7FlowType.RESPONSE) return;
      values.length = 0;
      contextLabelValues(context, flow, values, true);
      recordResponse(flow, l7.record.value, values, requests, duration);
    },
  };
};
