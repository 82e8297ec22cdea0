/**
 * DNS names on later flows with several enrichers, end to end: three enricher
 * processes share the raw partitions, dig asks a real dnsmasq in the backend pod,
 * so one enricher (the owner of the DNS socket's partition) parses the answer and
 * passes the names on over `periscope.dnsnames`. Then curl opens connections of
 * its own to the answered address, which land on partitions of every enricher:
 * every flow to it carries destination_names and the --to-fqdn filter
 * (destinationFqdn) selects all of them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PodProcess } from "@periscope/devstack";
import { type Flow, FlowType } from "@periscope/proto";
import { waitFor } from "@periscope/testing";
import { startDnsmasq, startHttpServer } from "./enricher-stack.ts";
import { type Stack, startStack, testPrefix } from "./harness.ts";

const NODE = "names-node";
const HTTP_PORT = 8080;
const DOMAIN = "names.test";
const ENRICHERS = ["enricher-0", "enricher-1", "enricher-2"];
const PARTITIONS = 16;
const CONNECTIONS = 12;

let stack: Stack;
const servers: PodProcess[] = [];
let backendIp = "";

const shared = (proc: string, kind: string) =>
  stack.metric(proc, "periscope_enricher_l7_dns_names_shared_total", { kind });

async function flowsTo(filter?: { destinationFqdn: string[] }): Promise<Flow[]> {
  const out: Flow[] = [];
  for await (const r of stack.client.getFlows({
    number: 100_000n,
    whitelist: [{ destinationPort: [String(HTTP_PORT)], ...filter }],
  })) {
    if (r.responseTypes.case === "flow" && r.responseTypes.value.Type === FlowType.L3_L4) {
      out.push(r.responseTypes.value);
    }
  }
  return out;
}

beforeAll(async () => {
  stack = await startStack({
    prefix: testPrefix(),
    pods: [{ name: "frontend" }, { name: "backend" }],
    nodes: [{ name: NODE, pods: ["frontend", "backend"] }],
    enrichers: ENRICHERS.length,
    env: { collector: { PERISCOPE_CAPTURE_RULES: "udp/53=512" } },
  });
  const t = stack.topology;
  backendIp = t.pod("backend").ipv4;
  servers.push(
    startDnsmasq(t, "backend", DOMAIN, [
      `--host-record=api.${DOMAIN},${backendIp}`,
      `--cname=www.${DOMAIN},api.${DOMAIN}`,
    ]),
  );
  servers.push(await startHttpServer(t, "backend", HTTP_PORT));
  // Every enricher holds partitions before any traffic, so connections spread over all three.
  await waitFor(
    async () => {
      const owned = await Promise.all(
        ENRICHERS.map((p) => stack.metric(p, "periscope_enricher_partitions_owned")),
      );
      return owned.every((n) => n > 0) && owned.reduce((a, b) => a + b, 0) === PARTITIONS;
    },
    { timeoutMs: 20_000, intervalMs: 200, what: "partitions spread over the three enrichers" },
  );
}, 120_000);

afterAll(async () => {
  for (const s of servers) s.kill();
  await stack?.stop();
}, 60_000);

describe("dns names across enrichers", () => {
  test("dns names - names learnt by one enricher are on later flows decoded by every enricher", async () => {
    const t = stack.topology;
    const dig = await t.exec("frontend", [
      "dig",
      "+short",
      "+time=2",
      "+tries=3",
      `@${backendIp}`,
      `www.${DOMAIN}`,
    ]);
    expect(dig.stdout.trim().split("\n")).toEqual([`api.${DOMAIN}.`, backendIp]);
    // The enricher that parsed the answer sent it; the two others applied it.
    await waitFor(
      async () => {
        const sent = await Promise.all(ENRICHERS.map((p) => shared(p, "sent")));
        const applied = await Promise.all(ENRICHERS.map((p) => shared(p, "applied")));
        const from = sent.findIndex((n) => n > 0);
        return (
          sent.filter((n) => n > 0).length === 1 &&
          applied.every((n, i) => (i === from ? n === 0 : n > 0))
        );
      },
      {
        timeoutMs: 15_000,
        intervalMs: 200,
        what: "names sent by one enricher, applied by the others",
      },
    );
    const curl = await t.exec("frontend", [
      "bash",
      "-c",
      `for i in $(seq 1 ${CONNECTIONS}); do curl -s -o /dev/null -w '%{http_code}\\n' --max-time 5 --resolve api.${DOMAIN}:${HTTP_PORT}:${backendIp} http://api.${DOMAIN}:${HTTP_PORT}/; done`,
    ]);
    expect(curl.stdout.trim().split("\n")).toEqual(
      Array.from({ length: CONNECTIONS }, () => "200"),
    );
    // Every connection's SYN to the backend arrived, on whichever enricher decoded it.
    let flows: Flow[] = [];
    await waitFor(
      async () => {
        flows = await flowsTo();
        const syns = flows.filter(
          (f) =>
            f.l4?.protocol.case === "TCP" &&
            f.l4.protocol.value.flags?.SYN &&
            !f.l4.protocol.value.flags.ACK,
        );
        return (
          new Set(syns.map((f) => (f.l4?.protocol.value as { sourcePort: number }).sourcePort))
            .size >= CONNECTIONS
        );
      },
      {
        timeoutMs: 20_000,
        intervalMs: 250,
        what: `${CONNECTIONS} connections to the backend seen`,
      },
    );
    const ports = new Set(
      flows.map((f) => (f.l4?.protocol.value as { sourcePort: number }).sourcePort),
    );
    expect(ports.size).toBeGreaterThanOrEqual(CONNECTIONS);
    const unnamed = flows.filter(
      (f) => f.destinationNames.join(",") !== `api.${DOMAIN},www.${DOMAIN}`,
    );
    expect(
      unnamed.map(
        (f) => `${f.IP?.source}:${(f.l4?.protocol.value as { sourcePort: number }).sourcePort}`,
      ),
    ).toEqual([]);
    // --to-fqdn selects every one of them.
    const byName = await flowsTo({ destinationFqdn: [`*.${DOMAIN}`] });
    expect(byName.length).toBe(flows.length);
    const none = await flowsTo({ destinationFqdn: [`*.other.test`] });
    expect(none).toEqual([]);
  }, 40_000);
});
