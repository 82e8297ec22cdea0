import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { MESSAGE_TYPE } from "@periscope/model";
import {
  DropReason,
  type Flow,
  FlowBatchSchema,
  IPVersion,
  LostEventSource,
  TrafficDirection,
  Verdict,
} from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { HubbleMetrics, parseMetricsSpec } from "./index.ts";
import { dnsFlow, family, httpFlow, key, samples, tcpFlow } from "./testing.ts";

const log = createLogger("hubble-metrics-test", "silent");

async function run(
  spec: string,
  flows: Flow[],
  maxLabelSets?: number,
): Promise<Map<string, number>> {
  const m = new HubbleMetrics({
    specs: parseMetricsSpec("--metrics", spec),
    log,
    ...(maxLabelSets ? { maxLabelSets } : {}),
  });
  for (const f of flows) m.observeFlow(f);
  return samples(await m.registry.metrics());
}

describe("hubble metrics handlers", () => {
  test("hubble metrics - flow: protocol, type, subtype, verdict per flow", async () => {
    const s = await run("flow", [
      tcpFlow(),
      tcpFlow(),
      dnsFlow({ query: "a.test.", qtypes: ["A"] }, false),
      tcpFlow({ verdict: Verdict.DROPPED, eventType: { type: MESSAGE_TYPE.DROP, subType: 133 } }),
      tcpFlow({ eventType: { type: MESSAGE_TYPE.POLICY_VERDICT } }),
    ]);
    const f = family(s, "hubble_flows_processed_total");
    const k = (protocol: string, type: string, subtype: string, verdict: string) =>
      key("hubble_flows_processed_total", { protocol, type, subtype, verdict });
    expect(f).toEqual(
      new Map([
        [k("TCP", "Trace", "to-network", "FORWARDED"), 2],
        [k("DNS", "L7", "DNS", "FORWARDED"), 1],
        [k("TCP", "Drop", "", "DROPPED"), 1],
        [k("TCP", "PolicyVerdict", "", "FORWARDED"), 1],
      ]),
    );
  });

  test("hubble metrics - drop: reason and protocol of dropped flows only", async () => {
    const drop = (reason: DropReason, over = {}) =>
      tcpFlow({
        verdict: Verdict.DROPPED,
        dropReasonDesc: reason,
        eventType: { type: MESSAGE_TYPE.DROP, subType: reason },
        ...over,
      });
    const s = await run("drop:sourceContext=namespace", [
      drop(DropReason.POLICY_DENIED),
      drop(DropReason.POLICY_DENIED),
      drop(DropReason.SOCKET_LOOKUP_FAILED, {
        l4: { protocol: { case: "UDP", value: { destinationPort: 9 } } },
      }),
      tcpFlow(),
    ]);
    expect(family(s, "hubble_drop_total")).toEqual(
      new Map([
        [key("hubble_drop_total", { source: "shop", reason: "POLICY_DENIED", protocol: "TCP" }), 2],
        [
          key("hubble_drop_total", {
            source: "shop",
            reason: "SOCKET_LOOKUP_FAILED",
            protocol: "UDP",
          }),
          1,
        ],
      ]),
    );
  });

  test("hubble metrics - tcp: SYN, SYN-ACK, FIN, RST of forwarded packets by family", async () => {
    const tcp = (flags: Record<string, boolean>, over = {}) =>
      tcpFlow({
        l4: { protocol: { case: "TCP", value: { destinationPort: 80, flags } } },
        ...over,
      });
    const s = await run("tcp", [
      tcp({ SYN: true }),
      tcp({ SYN: true, ACK: true }),
      tcp({ FIN: true, ACK: true }),
      tcp({ RST: true, FIN: true }),
      tcp({ ACK: true, PSH: true }),
      tcp({ SYN: true }, { verdict: Verdict.DROPPED }),
      tcp(
        { SYN: true },
        { IP: { source: "fd00::1", destination: "fd00::2", ipVersion: IPVersion.IPv6 } },
      ),
    ]);
    const k = (flag: string, family: string) => key("hubble_tcp_flags_total", { flag, family });
    expect(family(s, "hubble_tcp_flags_total")).toEqual(
      new Map([
        [k("SYN", "IPv4"), 1],
        [k("SYN-ACK", "IPv4"), 1],
        [k("FIN", "IPv4"), 2],
        [k("RST", "IPv4"), 1],
        [k("SYN", "IPv6"), 1],
      ]),
    );
  });

  test("hubble metrics - dns: queries, responses with rcode names, response types, ignoreAAAA, query", async () => {
    const flows = [
      dnsFlow({ query: "api.test.", qtypes: ["A"] }, false),
      dnsFlow({ query: "api.test.", qtypes: ["AAAA"] }, false),
      dnsFlow(
        { query: "api.test.", qtypes: ["A"], rcode: 0, ips: ["10.0.0.2"], rrtypes: ["CNAME", "A"] },
        true,
      ),
      dnsFlow({ query: "nope.test.", qtypes: ["A"], rcode: 3 }, true),
      dnsFlow(
        { query: "api.test.", qtypes: ["AAAA"], rcode: 0, ips: ["fd00::2"], rrtypes: ["AAAA"] },
        true,
      ),
      dnsFlow({ query: "deny.test.", qtypes: ["A"] }, false, { verdict: Verdict.DROPPED }),
    ];
    const s = await run("dns:query;ignoreAAAA", flows);
    const q = (rcode: string, ips: string, query: string) =>
      key("hubble_dns_queries_total", { rcode, qtypes: "A", ips_returned: ips, query });
    expect(family(s, "hubble_dns_queries_total")).toEqual(
      new Map([
        [q("", "0", "api.test."), 1],
        [q("Policy denied", "0", "deny.test."), 1],
      ]),
    );
    const r = (rcode: string, ips: string, query: string) =>
      key("hubble_dns_responses_total", { rcode, qtypes: "A", ips_returned: ips, query });
    expect(family(s, "hubble_dns_responses_total")).toEqual(
      new Map([
        [r("No Error", "1", "api.test."), 1],
        [r("Non-Existent Domain", "0", "nope.test."), 1],
      ]),
    );
    const t = (type: string) =>
      key("hubble_dns_response_types_total", { type, qtypes: "A", query: "api.test." });
    expect(family(s, "hubble_dns_response_types_total")).toEqual(
      new Map([
        [t("CNAME"), 1],
        [t("A"), 1],
      ]),
    );
    // Without options: no query label, AAAA counted.
    const plain = await run("dns", flows);
    expect(
      plain.get(key("hubble_dns_queries_total", { rcode: "", qtypes: "AAAA", ips_returned: "0" })),
    ).toBe(1);
  });

  test("hubble metrics - http: requests, responses and latency histogram (seconds)", async () => {
    const s = await run("http:sourceContext=pod-name;destinationContext=app", [
      httpFlow(),
      httpFlow(),
      httpFlow({ code: 200, latencyNs: 3_000_000n }),
      httpFlow({ code: 404, latencyNs: 150_000_000n }),
    ]);
    expect(family(s, "hubble_http_requests_total")).toEqual(
      new Map([
        [
          key("hubble_http_requests_total", {
            source: "frontend-7d9f-x2x4k",
            destination: "backend",
            method: "GET",
            protocol: "HTTP/1.1",
            reporter: "client",
          }),
          2,
        ],
      ]),
    );
    const resp = (status: string) =>
      key("hubble_http_responses_total", {
        source: "backend-0",
        destination: "frontend",
        method: "GET",
        protocol: "HTTP/1.1",
        status,
        reporter: "client",
      });
    expect(family(s, "hubble_http_responses_total")).toEqual(
      new Map([
        [resp("200"), 1],
        [resp("404"), 1],
      ]),
    );
    const h = { source: "backend-0", destination: "frontend", method: "GET", reporter: "client" };
    const bucket = (le: string) =>
      s.get(key("hubble_http_request_duration_seconds_bucket", { ...h, le }));
    expect(bucket("0.001")).toBeUndefined();
    expect(bucket("0.005")).toBe(1);
    expect(bucket("0.1")).toBe(1);
    expect(bucket("0.25")).toBe(2);
    expect(bucket("+Inf")).toBe(2);
    expect(s.get(key("hubble_http_request_duration_seconds_count", h))).toBe(2);
    expect(s.get(key("hubble_http_request_duration_seconds_sum", h))).toBeCloseTo(0.153, 9);
  });

  test("hubble metrics - httpV2: responses counted as requests with status, context inverted", async () => {
    const s = await run("httpV2:sourceContext=pod;destinationContext=pod", [
      httpFlow(),
      httpFlow({ code: 503, latencyNs: 20_000_000n }),
    ]);
    expect(family(s, "hubble_http_requests_total")).toEqual(
      new Map([
        [
          key("hubble_http_requests_total", {
            source: "shop/frontend-7d9f-x2x4k",
            destination: "shop/backend-0",
            method: "GET",
            protocol: "HTTP/1.1",
            status: "503",
            reporter: "client",
          }),
          1,
        ],
      ]),
    );
    expect(family(s, "hubble_http_responses_total").size).toBe(0);
  });

  test("hubble metrics - icmp: family and gopacket type names", async () => {
    const icmp4 = (type: number, code: number) =>
      tcpFlow({ l4: { protocol: { case: "ICMPv4", value: { type, code } } } });
    const s = await run("icmp", [
      icmp4(8, 0),
      icmp4(0, 0),
      icmp4(8, 0),
      icmp4(3, 3),
      tcpFlow({
        IP: { source: "fd00::1", destination: "fd00::2", ipVersion: IPVersion.IPv6 },
        l4: { protocol: { case: "ICMPv6", value: { type: 128, code: 0 } } },
      }),
    ]);
    const k = (family: string, type: string) => key("hubble_icmp_total", { family, type });
    expect(family(s, "hubble_icmp_total")).toEqual(
      new Map([
        [k("IPv4", "EchoRequest"), 2],
        [k("IPv4", "EchoReply"), 1],
        [k("IPv4", "DestinationUnreachable(Port)"), 1],
        [k("IPv6", "EchoRequest"), 1],
      ]),
    );
  });

  test("hubble metrics - port-distribution: forwarded requests by destination port", async () => {
    const s = await run("port-distribution", [
      tcpFlow(),
      tcpFlow(),
      tcpFlow({ isReply: true }),
      tcpFlow({ isReply: undefined }),
      tcpFlow({ verdict: Verdict.DROPPED }),
      tcpFlow({ l4: { protocol: { case: "UDP", value: { destinationPort: 53 } } } }),
      tcpFlow({ l4: { protocol: { case: "ICMPv4", value: { type: 8 } } } }),
    ]);
    const k = (protocol: string, port: string) =>
      key("hubble_port_distribution_total", { protocol, port });
    expect(family(s, "hubble_port_distribution_total")).toEqual(
      new Map([
        [k("TCP", "8080"), 2],
        [k("UDP", "53"), 1],
        [k("ICMPv4", "0"), 1],
      ]),
    );
  });

  test("hubble metrics - context: first non-empty identifier, direction-specific contexts, labelsContext", async () => {
    const s = await run(
      "flow:sourceContext=workload-name|pod-short;destinationContext=dns|ip;destinationIngressContext=reserved-identity;labelsContext=source_namespace,destination_app,traffic_direction",
      [
        tcpFlow({ destinationNames: ["backend.shop.svc"] }),
        tcpFlow({
          trafficDirection: TrafficDirection.INGRESS,
          destination: { labels: ["reserved:host"] },
        }),
      ],
    );
    const base = { protocol: "TCP", type: "Trace", subtype: "to-network", verdict: "FORWARDED" };
    expect(family(s, "hubble_flows_processed_total")).toEqual(
      new Map([
        [
          key("hubble_flows_processed_total", {
            ...base,
            source_namespace: "shop",
            destination_app: "backend",
            traffic_direction: "egress",
            source: "shop/frontend",
            destination: "backend.shop.svc",
          }),
          1,
        ],
        [
          key("hubble_flows_processed_total", {
            ...base,
            source_namespace: "shop",
            destination_app: "",
            traffic_direction: "ingress",
            source: "shop/frontend",
            destination: "reserved:host",
          }),
          1,
        ],
      ]),
    );
  });

  test("hubble metrics - lost events by source, zero for the kernel and queue sources from the start", async () => {
    const m = new HubbleMetrics({ specs: [], log });
    const lost = (source: LostEventSource, n: bigint) => ({
      responseTypes: { case: "lostEvents" as const, value: { source, numEventsLost: n } },
    });
    m.observe(
      create(FlowBatchSchema, {
        responses: [
          lost(LostEventSource.PERF_EVENT_RING_BUFFER, 7n),
          lost(LostEventSource.UNKNOWN_LOST_EVENT_SOURCE, 2n),
          lost(LostEventSource.PERF_EVENT_RING_BUFFER, 1n),
        ],
      }),
    );
    const s = samples(await m.registry.metrics());
    expect(family(s, "hubble_lost_events_total")).toEqual(
      new Map([
        [key("hubble_lost_events_total", { source: "perf_event_ring_buffer" }), 8],
        [key("hubble_lost_events_total", { source: "observer_events_queue" }), 0],
        [key("hubble_lost_events_total", { source: "unknown_lost_event_source" }), 2],
      ]),
    );
  });

  test("hubble metrics - staged increments count only once committed, and only then", async () => {
    const m = new HubbleMetrics({ specs: parseMetricsSpec("f", "flow,tcp"), log });
    const batch = create(FlowBatchSchema, {
      responses: [tcpFlow(), tcpFlow()].map((f) => ({
        responseTypes: { case: "flow" as const, value: f },
      })),
    });
    const staged = m.stage(batch);
    m.stage(batch); // never stored: never counted
    const flowKey = key("hubble_flows_processed_total", {
      protocol: "TCP",
      type: "Trace",
      subtype: "to-network",
      verdict: "FORWARDED",
    });
    const synKey = key("hubble_tcp_flags_total", { flag: "SYN", family: "IPv4" });
    let s = samples(await m.registry.metrics());
    expect([s.get(flowKey), s.get(synKey)]).toEqual([0, 0]);
    m.commit(staged);
    s = samples(await m.registry.metrics());
    expect([s.get(flowKey), s.get(synKey)]).toEqual([2, 2]);
    m.observe(batch);
    s = samples(await m.registry.metrics());
    expect([s.get(flowKey), s.get(synKey)]).toEqual([4, 4]);
  });

  test("hubble metrics - label sets capped per metric, the rest counted as overflow", async () => {
    const flows = [1, 2, 3, 4, 5, 5].map((i) =>
      tcpFlow({ l4: { protocol: { case: "TCP", value: { destinationPort: 8000 + i } } } }),
    );
    const s = await run("port-distribution", flows, 3);
    expect(family(s, "hubble_port_distribution_total").size).toBe(3);
    expect(s.get(key("hubble_port_distribution_total", { protocol: "TCP", port: "8001" }))).toBe(1);
    expect(
      s.get(
        key("periscope_hubble_metrics_overflow_total", {
          metric: "hubble_port_distribution_total",
        }),
      ),
    ).toBe(3);
    expect(
      s.get(
        key("periscope_hubble_metrics_label_sets", { metric: "hubble_port_distribution_total" }),
      ),
    ).toBe(3);
  });

  test("hubble metrics - a flow a handler cannot read is counted, not thrown", async () => {
    const m = new HubbleMetrics({ specs: parseMetricsSpec("f", "flow"), log });
    const bad = tcpFlow();
    Object.defineProperty(bad, "verdict", {
      get() {
        throw new Error("boom");
      },
    });
    expect(() => m.observeFlow(bad)).not.toThrow();
    const s = samples(await m.registry.metrics());
    expect(s.get(key("periscope_hubble_metrics_errors_total", { handler: "flow" }))).toBe(1);
  });
});
