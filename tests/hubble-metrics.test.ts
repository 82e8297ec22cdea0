/**
 * Hubble's metrics end to end: a real nats-server, one collector on two netns pods, two
 * enricher replicas each serving `hubble_*` metrics on their own port, and known traffic:
 * ping, curl over one keep-alive connection against a Bun server, dig against dnsmasq
 * (NOERROR and NXDOMAIN) and one UDP datagram to a closed port. The metrics of both
 * replicas, summed, must match what was sent (each packet is seen leaving one pod and
 * entering the other), agree with the flows the observer holds, and pass
 * `promtool check metrics`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PodProcess } from "@periscope/devstack";
import { type Flow, Verdict } from "@periscope/proto";
import { promtoolCheckMetrics, waitFor } from "@periscope/testing";
import { allFlows, startDnsmasq, startHttpServer, waitDnsAnswering } from "./enricher-stack.ts";
import { type Stack, startStack, sumMetric, testPrefix } from "./harness.ts";

const HTTP_PORT = 8080;
const DOMAIN = "periscope.test";
const ENRICHERS = ["enricher-0", "enricher-1"];
const METRICS = [
  "flow",
  "drop",
  "tcp",
  "icmp",
  "port-distribution",
  "dns:query",
  "http:sourceContext=pod;destinationContext=pod",
].join(",");

let stack: Stack;
const servers: PodProcess[] = [];
/** Hubble metrics port of each enricher, read from its startup log. */
const hubblePorts: number[] = [];
let ip: { frontend: string; backend: string };

async function scrape(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** `name` summed over every sample matching `labels`, over both enrichers. */
async function total(name: string, labels: Record<string, string> = {}): Promise<number> {
  let sum = 0;
  for (const port of hubblePorts) sum += sumMetric(await scrape(port), name, labels);
  return sum;
}

/** An expected value: fixed, or the number of flows the observer holds that `match` (>= `min`). */
interface Check {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value?: number;
  readonly match?: (f: Flow) => boolean;
  readonly min?: number;
}

/** `name{labels}` summed over both enrichers is `value`. */
const want = (name: string, labels: Record<string, string>, value: number): Check => ({
  name,
  labels,
  value,
});

/** `name{labels}` summed over both enrichers is the number of held flows that `match`, >= `min`. */
const wantFlows = (
  name: string,
  labels: Record<string, string>,
  match: (f: Flow) => boolean,
  min: number,
): Check => ({ name, labels, match, min });

/**
 * Waits until every check holds on one snapshot (both enrichers scraped, the observer's
 * flows read once per attempt); then asserts them all, showing every value on failure.
 */
async function expectAll(checks: readonly Check[]): Promise<void> {
  type Row = { name: string; labels: Record<string, string>; value: number };
  let got: Row[] = [];
  let expected: Row[] = [];
  await waitFor(
    async () => {
      const texts = await Promise.all(hubblePorts.map(scrape));
      const flows = checks.some((c) => c.match) ? await allFlows(stack) : [];
      got = [];
      expected = [];
      for (const c of checks) {
        const value = texts.reduce((n, t) => n + sumMetric(t, c.name, c.labels), 0);
        got.push({ name: c.name, labels: c.labels, value });
        let w = c.value ?? 0;
        if (c.match) {
          const n = flows.filter(c.match).length;
          w = n >= (c.min ?? 0) ? n : -1; // -1: fewer flows than the traffic made
        }
        expected.push({ name: c.name, labels: c.labels, value: w });
      }
      return Bun.deepEquals(got, expected);
    },
    { timeoutMs: 20_000, intervalMs: 250, what: "hubble metrics match the traffic" },
  ).catch(() => undefined);
  expect(got).toEqual(expected);
}

beforeAll(async () => {
  stack = await startStack({
    prefix: testPrefix(),
    pods: [{ name: "frontend" }, { name: "backend" }],
    nodes: [{ name: "hm-node", pods: ["frontend", "backend"] }],
    enrichers: ENRICHERS.length,
    env: {
      collector: { PERISCOPE_CAPTURE_RULES: `udp/53=512,tcp/${HTTP_PORT}=1024` },
      // Port 0: each replica binds its own free port and logs it.
      enricher: { PERISCOPE_METRICS: METRICS, PERISCOPE_METRICS_SERVER: "127.0.0.1:0" },
    },
  });
  for (const name of ENRICHERS) {
    const line = stack.sup
      .get(name)
      ?.lines()
      .find((l) => l.includes("hubble metrics server listening"));
    const port = Number(/"port":(\d+)/.exec(line ?? "")?.[1]);
    if (!port) throw new Error(`${name} logged no hubble metrics port`);
    hubblePorts.push(port);
  }
  const t = stack.topology;
  ip = { frontend: t.pod("frontend").ipv4, backend: t.pod("backend").ipv4 };
  servers.push(startDnsmasq(t, "backend", DOMAIN, [`--host-record=api.${DOMAIN},${ip.backend}`]));
  servers.push(
    await startHttpServer(
      t,
      "backend",
      HTTP_PORT,
      `(req) => {
         const missing = new URL(req.url).pathname === "/missing";
         return new Response(missing ? "no" : "ok", { status: missing ? 404 : 200 });
       }`,
    ),
  );
  // dnsmasq is up once it answers; this query is counted like the test's own (see below).
  await waitDnsAnswering(t, "frontend", ip.backend, `api.${DOMAIN}`);
}, 120_000);

afterAll(async () => {
  for (const s of servers) s.kill();
  await stack?.stop();
}, 60_000);

describe("hubble metrics", () => {
  test("hubble metrics - values of every handler match the traffic sent, summed over two enrichers", async () => {
    const t = stack.topology;
    // ICMP: 3 echo requests and replies, each seen leaving one pod and entering the other.
    await t.exec("frontend", ["ping", "-c", "3", "-i", "0.2", "-W", "2", ip.backend]);
    // HTTP: one keep-alive connection, GET 200 then GET 404.
    const curl = await t.exec("frontend", [
      "curl",
      "-sS",
      "--max-time",
      "10",
      "-w",
      "%{http_code}\\n",
      ...["/ok", "/missing"].flatMap((p) => [
        "-o",
        "/dev/null",
        `http://${ip.backend}:${HTTP_PORT}${p}`,
      ]),
    ]);
    expect(curl.stdout.trim().split("\n")).toEqual(["200", "404"]);
    // DNS: 1 more NOERROR answer for api (2 with the readiness probe, which may have been
    // retried: counted from what dig printed), 1 NXDOMAIN.
    const dig = (name: string) =>
      t.exec("frontend", ["dig", "+time=2", "+tries=1", `@${ip.backend}`, name]);
    expect((await dig(`api.${DOMAIN}`)).stdout).toContain("NOERROR");
    expect((await dig(`nope.${DOMAIN}`)).stdout).toContain("NXDOMAIN");
    // A datagram to a closed port: the kernel drops it and answers port unreachable.
    await t.exec("frontend", ["bash", "-c", `echo x > /dev/udp/${ip.backend}/9`]);

    const pods = { source: "demo/frontend", destination: "demo/backend" };
    const back = { source: "demo/backend", destination: "demo/frontend", method: "GET" };
    const toHttp = (f: Flow) =>
      f.verdict === Verdict.FORWARDED &&
      f.isReply === false &&
      f.l4?.protocol.case === "TCP" &&
      f.l4.protocol.value.destinationPort === HTTP_PORT;
    const api = { qtypes: "A", query: `api.${DOMAIN}.` };
    const isApi = (f: Flow) => f.l7?.record.case === "dns" && f.l7.record.value.query === api.query;
    await expectAll([
      want("hubble_icmp_total", { family: "IPv4", type: "EchoRequest" }, 6),
      // 6 forwarded replies, plus the kernel drops of replies a pod reports (as Hubble, every
      // ICMP flow counts, whatever its verdict).
      wantFlows(
        "hubble_icmp_total",
        { family: "IPv4", type: "EchoReply" },
        (f) => f.l4?.protocol.case === "ICMPv4" && f.l4.protocol.value.type === 0,
        6,
      ),
      want("hubble_icmp_total", { family: "IPv4", type: "DestinationUnreachable(Port)" }, 2),

      want("hubble_http_requests_total", { ...pods, method: "GET", protocol: "HTTP/1.1" }, 2),
      want("hubble_http_responses_total", { ...back, status: "200" }, 1),
      want("hubble_http_responses_total", { ...back, status: "404" }, 1),
      want("hubble_http_request_duration_seconds_count", back, 2),
      want("hubble_http_request_duration_seconds_bucket", { ...back, le: "+Inf" }, 2),

      want("hubble_tcp_flags_total", { flag: "SYN", family: "IPv4" }, 2),
      want("hubble_tcp_flags_total", { flag: "SYN-ACK", family: "IPv4" }, 2),
      wantFlows(
        "hubble_port_distribution_total",
        { protocol: "TCP", port: String(HTTP_PORT) },
        toHttp,
        6,
      ),

      // dig's answers for api: the test's one plus the readiness probe (and its retries).
      wantFlows(
        "hubble_dns_responses_total",
        { ...api, rcode: "No Error", ips_returned: "1" },
        (f) => isApi(f) && f.isReply === true,
        2,
      ),
      wantFlows(
        "hubble_dns_queries_total",
        { ...api, rcode: "", ips_returned: "0" },
        (f) => isApi(f) && f.isReply === false,
        2,
      ),
      wantFlows(
        "hubble_dns_response_types_total",
        { ...api, type: "A" },
        (f) => isApi(f) && f.isReply === true,
        2,
      ),
      want(
        "hubble_dns_responses_total",
        { qtypes: "A", query: `nope.${DOMAIN}.`, rcode: "Non-Existent Domain", ips_returned: "0" },
        1,
      ),

      wantFlows(
        "hubble_drop_total",
        { reason: "SOCKET_LOOKUP_FAILED", protocol: "UDP" },
        (f) => f.verdict === Verdict.DROPPED && f.l4?.protocol.case === "UDP",
        1,
      ),
      wantFlows(
        "hubble_flows_processed_total",
        { protocol: "HTTP", type: "L7", subtype: "HTTP", verdict: "FORWARDED" },
        (f) => f.l7?.record.case === "http",
        4,
      ),
    ]);
  }, 60_000);

  test("hubble metrics - every flow the observer holds is counted once over the replicas", async () => {
    let flows = -1;
    let counted = -2;
    // Background packets (IPv6 neighbour discovery) may still arrive: compare until a quiet moment.
    await waitFor(
      async () => {
        counted = await total("hubble_flows_processed_total");
        flows = (await allFlows(stack)).length;
        return flows === counted && flows === (await total("hubble_flows_processed_total"));
      },
      { timeoutMs: 20_000, intervalMs: 300, what: "hubble_flows_processed_total = flows held" },
    ).catch(() => undefined);
    expect(counted).toBe(flows);
    expect(flows).toBeGreaterThan(20);
    expect(await total("hubble_lost_events_total", { source: "perf_event_ring_buffer" })).toBe(0);
  }, 30_000);

  test("hubble metrics - each replica's exposition passes promtool check metrics", async () => {
    for (const port of hubblePorts) {
      const text = await scrape(port);
      expect(text).toContain("# TYPE hubble_flows_processed_total counter");
      expect(text).toContain("# TYPE hubble_http_request_duration_seconds histogram");
      expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, output: "" });
    }
  }, 30_000);
});
