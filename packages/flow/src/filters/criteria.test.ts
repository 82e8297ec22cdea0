import { describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { DropReason, type Flow, FlowFilterSchema, FlowSchema, Verdict } from "@periscope/proto";
import { compileFlowFilter } from "./compile.ts";
import { FilterError } from "./errors.ts";

type FilterInit = MessageInitShape<typeof FlowFilterSchema>;
const pass = (init: FilterInit, flow: Flow): boolean =>
  compileFlowFilter(create(FlowFilterSchema, init))(flow);

/** An HTTP response with its L7 record, SNATed source, services, workloads, clusters, traces. */
const http: Flow = create(FlowSchema, {
  eventType: { type: 129 },
  IP: { source: "10.0.0.5", sourceXlated: "192.0.2.10", destination: "10.0.1.7" },
  l7: {
    record: {
      case: "http",
      value: {
        code: 503,
        method: "GET",
        url: "http://api.demo:8080/v1/users%20list?id=3",
        headers: [{ key: "x-req", value: "abc" }],
      },
    },
  },
  source: {
    namespace: "demo",
    clusterName: "east",
    workloads: [{ kind: "Deployment", name: "frontend" }],
  },
  destination: { namespace: "demo", clusterName: "west" },
  sourceService: { namespace: "demo", name: "frontend-svc" },
  destinationService: { namespace: "demo", name: "api" },
  nodeLabels: ["kubernetes.io/hostname=node-1", "topology.kubernetes.io/zone=a"],
  traceContext: { parent: { traceId: "4bf92f3577b34da6a3ce929d0e0e4736" } },
  ipTraceId: { traceId: 42n },
});
/** A DNS request. */
const dns: Flow = create(FlowSchema, {
  l7: { record: { case: "dns", value: { query: "api.example.com." } } },
});
/** A dropped L3/L4 flow without any of the above. */
const dropped: Flow = create(FlowSchema, {
  IP: { source: "10.0.0.5", destination: "10.0.1.7" },
  verdict: Verdict.DROPPED,
  dropReasonDesc: DropReason.POLICY_DENIED,
});
const flows = { http, dns, dropped };
type Name = keyof typeof flows;
const matching = (init: FilterInit): Name[] =>
  (Object.keys(flows) as Name[]).filter((n) => pass(init, flows[n]));

describe("criteria", () => {
  const cases: [string, FilterInit, Name[]][] = [
    ["source_ip_xlated exact", { sourceIpXlated: ["192.0.2.10"] }, ["http"]],
    ["source_ip_xlated cidr", { sourceIpXlated: ["192.0.2.0/24"] }, ["http"]],
    ["source_ip_xlated no match", { sourceIpXlated: ["10.0.0.5"] }, []],
    ["source_service prefix", { sourceService: ["demo/front"] }, ["http"]],
    ["destination_service namespace", { destinationService: ["demo/"] }, ["http"]],
    ["source_service other namespace", { sourceService: ["prod/front"] }, []],
    [
      "source_workload kind and name",
      { sourceWorkload: [{ kind: "Deployment", name: "frontend" }] },
      ["http"],
    ],
    ["source_workload name only", { sourceWorkload: [{ name: "frontend" }] }, ["http"]],
    ["destination_workload no match", { destinationWorkload: [{ kind: "Deployment" }] }, []],
    ["source_cluster_name", { sourceClusterName: ["east"] }, ["http"]],
    ["destination_cluster_name", { destinationClusterName: ["west", "north"] }, ["http"]],
    ["cluster name no match", { sourceClusterName: ["west"] }, []],
    ["drop_reason_desc", { dropReasonDesc: [DropReason.POLICY_DENIED] }, ["dropped"]],
    [
      "drop_reason_desc needs a dropped verdict",
      { dropReasonDesc: [DropReason.DROP_REASON_UNKNOWN] },
      [],
    ],
    ["drop_reason_desc no match", { dropReasonDesc: [DropReason.CT_MAP_INSERTION_FAILED] }, []],
    ["http_status_code exact", { httpStatusCode: ["503"] }, ["http"]],
    ["http_status_code class", { httpStatusCode: ["5+"] }, ["http"]],
    ["http_status_code two-digit class", { httpStatusCode: ["50+"] }, ["http"]],
    ["http_status_code no match", { httpStatusCode: ["2+", "404"] }, []],
    ["http with l7 event type", { httpStatusCode: ["5+"], eventType: [{ type: 129 }] }, ["http"]],
    ["http_method case-insensitive", { httpMethod: ["get"] }, ["http"]],
    ["http_method no match", { httpMethod: ["POST"] }, []],
    ["http_path regex on decoded path", { httpPath: ["^/v1/users list$"] }, ["http"]],
    ["http_path no match", { httpPath: ["^/v2/"] }, []],
    ["http_url regex", { httpUrl: ["(?i)API\\.DEMO:8080"] }, ["http"]],
    ["http_url no match", { httpUrl: ["^https://"] }, []],
    ["http_header", { httpHeader: [{ key: "x-req", value: "abc" }] }, ["http"]],
    ["http_header value differs", { httpHeader: [{ key: "x-req", value: "abd" }] }, []],
    ["dns_query regex", { dnsQuery: ["example\\.com\\.$"] }, ["dns"]],
    ["dns_query no match", { dnsQuery: ["^www\\."] }, []],
    ["node_labels selector", { nodeLabels: ["topology.kubernetes.io/zone in (a, b)"] }, ["http"]],
    ["node_labels no match", { nodeLabels: ["kubernetes.io/hostname=node-2"] }, []],
    ["trace_id", { traceId: ["4bf92f3577b34da6a3ce929d0e0e4736"] }, ["http"]],
    ["trace_id no match", { traceId: ["00000000000000000000000000000001"] }, []],
    ["ip_trace_id", { ipTraceId: [42n, 7n] }, ["http"]],
    ["ip_trace_id no match", { ipTraceId: [7n] }, []],
    ["empty experimental", { experimental: {} }, ["http", "dns", "dropped"]],
    [
      "CEL expressions, any true",
      {
        experimental: { celExpression: ["_flow.verdict == Verdict.DROPPED", "has(_flow.l7.dns)"] },
      },
      ["dns", "dropped"],
    ],
  ];
  test.each(cases)("criteria - %s", (_name, init, expected) => {
    expect(matching(init)).toEqual(expected);
  });

  const invalid: [string, FilterInit, string, string][] = [
    ["a bad xlated ip", { sourceIpXlated: ["1.2.3"] }, "source_ip_xlated", '"1.2.3"'],
    ["a service with two slashes", { sourceService: ["a/b/c"] }, "source_service", '"a/b/c"'],
    ["an empty service", { destinationService: [""] }, "destination_service", '""'],
    ["an empty workload", { sourceWorkload: [{}] }, "source_workload", "name or a kind"],
    [
      "an empty dst workload",
      { destinationWorkload: [{}] },
      "destination_workload",
      "name or a kind",
    ],
    [
      "an empty cluster name",
      { destinationClusterName: [""] },
      "destination_cluster_name",
      "empty",
    ],
    [
      "an unknown drop reason",
      { dropReasonDesc: [9999 as DropReason] },
      "drop_reason_desc",
      "9999",
    ],
    ["a 3-digit out-of-range code", { httpStatusCode: ["600"] }, "http_status_code", '"600"'],
    ["a bad code class", { httpStatusCode: ["5xx"] }, "http_status_code", '"5xx"'],
    [
      "a non-l7 event type",
      { httpMethod: ["GET"], eventType: [{ type: 4 }] },
      "http_method",
      "event_type",
    ],
    ["a bad method", { httpMethod: ["GE T"] }, "http_method", '"GE T"'],
    ["a path backreference", { httpPath: ["(a)\\1"] }, "http_path", "backreferences"],
    ["a url lookahead", { httpUrl: ["foo(?=bar)"] }, "http_url", "lookaround"],
    ["a url lookbehind", { httpUrl: ["(?<!x)y"] }, "http_url", "lookaround"],
    ["a broken url regex", { httpUrl: ["(unclosed"] }, "http_url", '"(unclosed"'],
    ["an empty header key", { httpHeader: [{ key: "", value: "x" }] }, "http_header", "key"],
    ["a bad dns regex", { dnsQuery: ["[a-"] }, "dns_query", '"[a-"'],
    ["a dns backreference", { dnsQuery: ["(x)\\k<a>"] }, "dns_query", "backreferences"],
    ["a bad node label selector", { nodeLabels: ["zone in (a"] }, "node_labels", "zone"],
    ["an empty trace id", { traceId: [""] }, "trace_id", "empty"],
    ["a zero ip trace id", { ipTraceId: [0n] }, "ip_trace_id", "0"],
    [
      "a CEL expression with an unknown field",
      { experimental: { celExpression: ["_flow.nope == 1"] } },
      "experimental.cel_expression",
      "undefined field 'nope'",
    ],
  ];
  test.each(invalid)("criteria - rejects %s", (_name, init, field, inMessage) => {
    let caught: unknown;
    try {
      compileFlowFilter(create(FlowFilterSchema, init));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FilterError);
    const err = caught as FilterError;
    expect(err.field).toBe(field);
    expect(err.message).toContain(field);
    expect(err.message).toContain(inMessage);
  });

  test("criteria - an escaped paren or digit is not a lookaround or backreference", () => {
    expect(matching({ httpUrl: ["\\(?=", "\\\\1|users"] })).toEqual(["http"]);
  });
});
