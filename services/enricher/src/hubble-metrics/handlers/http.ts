import { type Flow, L7FlowType, TrafficDirection } from "@periscope/proto";
import { contextLabelNames, contextLabelValues } from "../context.ts";
import type { HandlerFactory } from "../handler.ts";
import { TableCounter, TableHistogram } from "../table.ts";

/** Hubble's `reporter` label: `client` for egress, `server` for ingress, else `unknown`. */
function reporter(flow: Flow): string {
  if (flow.trafficDirection === TrafficDirection.EGRESS) return "client";
  if (flow.trafficDirection === TrafficDirection.INGRESS) return "server";
  return "unknown";
}

const seconds = (flow: Flow): number => Number(flow.l7?.latencyNs ?? 0n) / 1e9;

/**
 * Hubble's `http` handler: `hubble_http_requests_total{...context,method,protocol,reporter}`
 * per request, `hubble_http_responses_total{...context,method,protocol,status,reporter}`
 * and `hubble_http_request_duration_seconds{...context,method,reporter}` (request to
 * response latency) per response.
 */
export const httpHandler: HandlerFactory = ({ registry, limit, journal, context }) => {
  const ctx = contextLabelNames(context);
  const requests = new TableCounter({
    name: "hubble_http_requests_total",
    help: "Count of HTTP requests",
    labelNames: [...ctx, "method", "protocol", "reporter"],
    registry,
    limit,
    journal,
  });
  const responses = new TableCounter({
    name: "hubble_http_responses_total",
    help: "Count of HTTP responses",
    labelNames: [...ctx, "method", "protocol", "status", "reporter"],
    registry,
    limit,
    journal,
  });
  const duration = new TableHistogram({
    name: "hubble_http_request_duration_seconds",
    help: "Quantiles of HTTP request duration in seconds",
    labelNames: [...ctx, "method", "reporter"],
    registry,
    limit,
    journal,
  });
  const values: string[] = [];
  return {
    process(flow) {
      const l7 = flow.l7;
      if (l7?.record.case !== "http") return;
      const http = l7.record.value;
      values.length = 0;
      contextLabelValues(context, flow, values);
      const n = values.length;
      const rep = reporter(flow);
      if (l7.type === L7FlowType.REQUEST) {
        values.push(http.method, http.protocol, rep);
        requests.add(values);
      } else if (l7.type === L7FlowType.RESPONSE) {
        values.push(http.method, http.protocol, String(http.code), rep);
        responses.add(values);
        values.length = n;
        values.push(http.method, rep);
        duration.record(values, seconds(flow));
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
export const httpV2Handler: HandlerFactory = ({ registry, limit, journal, context }) => {
  const ctx = contextLabelNames(context);
  const requests = new TableCounter({
    name: "hubble_http_requests_total",
    help: "Count of HTTP requests",
    labelNames: [...ctx, "method", "protocol", "status", "reporter"],
    registry,
    limit,
    journal,
  });
  const duration = new TableHistogram({
    name: "hubble_http_request_duration_seconds",
    help: "Quantiles of HTTP request duration in seconds",
    labelNames: [...ctx, "method", "reporter"],
    registry,
    limit,
    journal,
  });
  const values: string[] = [];
  return {
    process(flow) {
      const l7 = flow.l7;
      if (l7?.record.case !== "http" || l7.type !== L7FlowType.RESPONSE) return;
      const http = l7.record.value;
      values.length = 0;
      contextLabelValues(context, flow, values, true);
      const n = values.length;
      const rep = reporter(flow);
      values.push(http.method, http.protocol, String(http.code), rep);
      requests.add(values);
      values.length = n;
      values.push(http.method, rep);
      duration.record(values, seconds(flow));
    },
  };
};
