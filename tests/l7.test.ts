/**
 * L7 flows parsed from captured payload, end to end: a real dnsmasq in a test
 * namespace queried with dig (NOERROR, NXDOMAIN, CNAME chain, AAAA, TCP), a Bun
 * HTTP server queried with curl over one keep-alive connection, names from DNS
 * answers on later flows (--to-fqdn), and the jq recipes Hubble users run, with
 * Debian's jq over `periscope observe` output. The collector reports every packet
 * (aggregation none) and captures 512/1024 bytes on the DNS and HTTP ports.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PodProcess } from "@periscope/devstack";
import { type DNS, type Flow, FlowType, L7FlowType } from "@periscope/proto";
import { waitFor } from "@periscope/testing";
import { allFlows, startDnsmasq, startHttpServer, waitDnsAnswering } from "./enricher-stack.ts";
import { ROOT, type Stack, startStack, testPrefix } from "./harness.ts";

const NODE = "l7-node";
const HTTP_PORT = 8080;
const DOMAIN = "periscope.test";

let stack: Stack;
const servers: PodProcess[] = [];
let ip: { frontend: string; backend: string; db: string };

const l7Of = (fs: Flow[], kind: "dns" | "http") =>
  fs.filter((f) => f.Type === FlowType.L7 && f.l7?.record.case === kind);

async function eventually<T>(pick: (fs: Flow[]) => T | undefined, what: string): Promise<T> {
  let found: T | undefined;
  await waitFor(
    async () => {
      found = pick(await allFlows(stack));
      return found !== undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250, what },
  );
  return found as T;
}

/** Runs `periscope observe <args>` piped through jq `program` (flags first). */
async function recipe(observeArgs: string[], jqArgs: string[]): Promise<string> {
  const cli = ["bun", "run", `${ROOT}/cli/src/main.ts`, "observe", "--server", stack.observerAddr];
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  // Run as written: `-o json` prints bare flows under PERISCOPE_COMPAT=legacy-json-output, the
  // switch hubble users set (HUBBLE_COMPAT) for recipes written for its original JSON output.
  const script = `${[...cli, ...observeArgs].map(q).join(" ")} | jq ${jqArgs.map(q).join(" ")}`;
  const p = Bun.spawn(["bash", "-o", "pipefail", "-c", script], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, PERISCOPE_COMPAT: "legacy-json-output" },
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`recipe failed (${code}): ${err}`);
  return out;
}

beforeAll(async () => {
  const prefix = testPrefix();
  stack = await startStack({
    prefix,
    pods: [{ name: "frontend" }, { name: "backend" }, { name: "db" }],
    nodes: [{ name: NODE, pods: ["frontend", "backend", "db"] }],
    env: {
      collector: { PERISCOPE_CAPTURE_RULES: `udp/53=512,tcp/53=512,tcp/${HTTP_PORT}=1024` },
    },
  });
  const t = stack.topology;
  ip = { frontend: t.pod("frontend").ipv4, backend: t.pod("backend").ipv4, db: t.pod("db").ipv4 };
  servers.push(
    startDnsmasq(t, "backend", DOMAIN, [
      `--host-record=api.${DOMAIN},${ip.backend},fd00:77::2`,
      `--cname=www.${DOMAIN},api.${DOMAIN}`,
      "--log-facility=-",
    ]),
  );
  servers.push(
    await startHttpServer(
      t,
      "backend",
      HTTP_PORT,
      `async (req) => {
         const path = new URL(req.url).pathname;
         if (path === "/slow") await Bun.sleep(150);
         return new Response(path === "/missing" ? "no" : "ok", { status: path === "/missing" ? 404 : 200 });
       }`,
    ),
  );
  await waitDnsAnswering(t, "frontend", ip.backend, `api.${DOMAIN}`);
}, 120_000);

afterAll(async () => {
  for (const s of servers) s.kill();
  await stack?.stop();
}, 60_000);

describe("l7", () => {
  test("l7 - DNS over UDP and TCP: NOERROR, NXDOMAIN, CNAME chain, AAAA, latency, Hubble summaries", async () => {
    const t = stack.topology;
    const dig = (pod: string, ...args: string[]) =>
      t.exec(pod, ["dig", "+time=2", "+tries=1", `@${ip.backend}`, ...args]);
    expect((await dig("frontend", "+short", `www.${DOMAIN}`)).stdout).toContain(ip.backend);
    expect((await dig("frontend", "+short", "AAAA", `api.${DOMAIN}`)).stdout.trim()).toBe(
      "fd00:77::2",
    );
    expect((await dig("frontend", "+tcp", "+short", `api.${DOMAIN}`)).stdout.trim()).toBe(
      ip.backend,
    );
    for (const [pod, n] of [
      ["frontend", 2],
      ["db", 1],
    ] as const) {
      for (let i = 0; i < n; i++) {
        expect((await dig(pod, `nope${i}.${DOMAIN}`)).stdout).toContain("NXDOMAIN");
      }
    }
    const answers = (fs: Flow[]) =>
      l7Of(fs, "dns").filter((f) => f.l7?.type === L7FlowType.RESPONSE);
    const dnsFlows = await eventually((fs) => {
      const got = answers(fs);
      return got.filter((f) => (f.l7?.record.value as { rcode: number }).rcode === 3).length >= 3 &&
        got.some((f) => f.l4?.protocol.case === "TCP")
        ? l7Of(fs, "dns")
        : undefined;
    }, "DNS answers of the test queries");
    const dnsOf = (f: Flow) => f.l7?.record.value as DNS;
    const cname = dnsFlows.find(
      (f) => f.l7?.type === L7FlowType.RESPONSE && dnsOf(f).query === `www.${DOMAIN}.`,
    );
    expect(cname).toBeDefined();
    if (!cname) return;
    expect(dnsOf(cname).cnames).toEqual([`api.${DOMAIN}.`]);
    expect(dnsOf(cname).ips).toEqual([ip.backend]);
    expect(dnsOf(cname).rrtypes).toEqual(["CNAME", "A"]);
    expect(cname.eventType?.type).toBe(129);
    expect(cname.isReply).toBe(true);
    expect(cname.l7?.latencyNs).toBeGreaterThan(0n);
    expect(cname.destination?.podName).toBe("frontend");
    expect(cname.Summary).toMatch(
      new RegExp(
        `^DNS Answer "${ip.backend.replaceAll(".", "\\.")}" CNAMEs: "api\\.${DOMAIN}\\." TTL: \\d+ \\(Query www\\.${DOMAIN}\\. A\\)$`,
      ),
    );
    const query = dnsFlows.find(
      (f) => f.l7?.type === L7FlowType.REQUEST && dnsOf(f).query === `www.${DOMAIN}.`,
    );
    expect(query?.Summary).toBe(`DNS Query www.${DOMAIN}. A`);
    expect(query?.source?.podName).toBe("frontend");
    const aaaa = dnsFlows.find(
      (f) => f.l7?.type === L7FlowType.RESPONSE && dnsOf(f).qtypes[0] === "AAAA",
    );
    expect(aaaa && dnsOf(aaaa).ips).toEqual(["fd00:77::2"]);
    const overTcp = dnsFlows.filter((f) => f.l4?.protocol.case === "TCP");
    expect(overTcp.map((f) => f.l7?.type).sort()).toEqual([
      L7FlowType.REQUEST,
      L7FlowType.RESPONSE,
    ]);
    // each query and answer once, though both ends of the path see the packet
    const nx = dnsFlows.filter((f) => f.l7?.type === L7FlowType.RESPONSE && dnsOf(f).rcode === 3);
    expect(nx).toHaveLength(3);
    expect(nx[0]?.Summary).toContain("DNS Answer RCode: Non-Existent Domain");
  }, 60_000);

  test("l7 - HTTP keep-alive: requests and responses matched in order with latency; names from DNS on later flows", async () => {
    const t = stack.topology;
    // after the DNS answers above, the backend's address carries api/www names
    const urls = ["/fast", "/slow", "/missing", "/fast?x=1"].map(
      (p) => `http://api.${DOMAIN}:${HTTP_PORT}${p}`,
    );
    const curl = await t.exec("frontend", [
      "curl",
      "-sS",
      "--max-time",
      "10",
      "--resolve",
      `api.${DOMAIN}:${HTTP_PORT}:${ip.backend}`,
      "-H",
      "Authorization: Bearer s3cret",
      "-w",
      "%{http_code} %{num_connects}\\n",
      ...urls.flatMap((u) => ["-o", "/dev/null", u]),
    ]);
    expect(curl.stdout.trim().split("\n")).toEqual(["200 1", "200 0", "404 0", "200 0"]);
    const http = await eventually((fs) => {
      const got = l7Of(fs, "http");
      return got.filter((f) => f.l7?.type === L7FlowType.RESPONSE).length >= 4 ? got : undefined;
    }, "HTTP responses");
    const h = (f: Flow) =>
      f.l7?.record.value as {
        code: number;
        method: string;
        url: string;
        protocol: string;
        headers: { key: string; value: string }[];
      };
    const reqs = http.filter((f) => f.l7?.type === L7FlowType.REQUEST);
    const resps = http.filter((f) => f.l7?.type === L7FlowType.RESPONSE);
    expect(reqs.map((f) => h(f).url)).toEqual(urls);
    expect(resps.map((f) => [h(f).code, h(f).url])).toEqual(
      [200, 200, 404, 200].map((c, i) => [c, urls[i] ?? ""]),
    );
    expect(reqs[0]?.Summary).toBe(`HTTP/1.1 GET ${urls[0]}`);
    expect(resps[1]?.Summary).toMatch(
      new RegExp(`^HTTP/1\\.1 200 \\d+ms \\(GET ${urls[1]?.replaceAll(".", "\\.")}\\)$`),
    );
    expect(resps[1]?.l7?.latencyNs).toBeGreaterThanOrEqual(150_000_000n);
    expect(resps[0]?.l7?.latencyNs).toBeLessThan(150_000_000n);
    // the allow-list shows User-Agent; Authorization is not listed, so not shown at all
    expect(h(reqs[0] as Flow).headers.map((x) => x.key)).toEqual(["User-Agent"]);
    expect(http.flatMap((f) => h(f).headers.map((x) => x.value))).not.toContain("Bearer s3cret");
    // names learnt from the DNS answers are on the packet flows to the backend
    const toFqdn = [];
    for await (const r of stack.client.getFlows({
      number: 100_000n,
      whitelist: [{ destinationFqdn: [`*.${DOMAIN}`], destinationPort: [String(HTTP_PORT)] }],
    })) {
      if (r.responseTypes.case === "flow") toFqdn.push(r.responseTypes.value);
    }
    expect(toFqdn.length).toBeGreaterThan(0);
    expect(toFqdn[0]?.destinationNames).toEqual([`api.${DOMAIN}`, `www.${DOMAIN}`]);
  }, 60_000);

  test("l7 - the jq recipes answer what was sent", async () => {
    // recipe 1: max latency of GET responses per URL, slowest last
    const r1 = JSON.parse(
      await recipe(
        ["--since", "3m", "--protocol", "http", "-o", "json"],
        [
          "-sr",
          'map(select(.l7.type=="RESPONSE" and .l7.http.method=="GET")) | group_by(.l7.http.url) | map({url: .[0].l7.http.url, max_latency_ms: ((map(.l7.latency_ns | tonumber) | max) / 1000000)}) | sort_by(.max_latency_ms)',
        ],
      ),
    ) as { url: string; max_latency_ms: number }[];
    expect(r1.map((r) => r.url).sort()).toEqual(
      ["/fast", "/fast?x=1", "/missing", "/slow"]
        .map((p) => `http://api.${DOMAIN}:${HTTP_PORT}${p}`)
        .sort(),
    );
    expect(r1.at(-1)?.url).toBe(`http://api.${DOMAIN}:${HTTP_PORT}/slow`);
    expect(r1.at(-1)?.max_latency_ms).toBeGreaterThanOrEqual(150);
    // recipe 2: TCP flows to 8080 by flags; one connection, seen leaving frontend and entering backend
    const r2 = JSON.parse(
      await recipe(
        ["--since", "3m", "--protocol", "tcp", "-o", "json"],
        ["-sr", "map(select(.l4.TCP.destination_port==8080)) | group_by(.l4.TCP.flags)"],
      ),
    ) as { l4: { TCP: { flags?: Record<string, boolean> } } }[][];
    const syn = r2.find((g) => JSON.stringify(g[0]?.l4.TCP.flags) === '{"SYN":true}');
    expect(syn).toHaveLength(2);
    // L7 request flows carry the ports without flags, like Hubble's
    expect(r2.find((g) => g[0]?.l4.TCP.flags === undefined)).toHaveLength(4);
    // recipe 3: who got NXDOMAIN
    const r3 = await recipe(
      ["--since", "10m", "-t", "l7", "-j"],
      ['select(.l7.dns.rcode==3) | .destination.namespace + "/" + .destination.pod_name'],
    );
    const counts = r3
      .trim()
      .split("\n")
      .reduce<Record<string, number>>((m, l) => {
        m[l] = (m[l] ?? 0) + 1;
        return m;
      }, {});
    expect(counts).toEqual({ '"demo/frontend"': 2, '"demo/db"': 1 });
  }, 60_000);

  test("l7 - TLS on the HTTP port is counted as unparsed (tls) and makes no L7 flow", async () => {
    const before = l7Of(await allFlows(stack), "http").length;
    const t = stack.topology;
    // a TLS client hello to the HTTP port: the server answers nothing useful, the enricher counts tls
    await t.exec("frontend", [
      "bash",
      "-c",
      `printf '\\x16\\x03\\x01\\x00\\x05hello' | nc -w1 ${ip.backend} ${HTTP_PORT} || true`,
    ]);
    await waitFor(
      async () =>
        (await stack.metric("enricher-0", "periscope_enricher_l7_unparsed_total", {
          protocol: "http",
          reason: "tls",
        })) >= 1,
      {
        timeoutMs: 15_000,
        intervalMs: 250,
        what: "tls counted",
      },
    );
    // no request was read; the server's error answer (if any) is a response without a request
    const added = l7Of(await allFlows(stack), "http").slice(before);
    expect(added.filter((f) => f.l7?.type === L7FlowType.REQUEST)).toHaveLength(0);
    for (const f of added) expect((f.l7?.record.value as { method: string }).method).toBe("");
  }, 30_000);
  test("l7 - at aggregation medium, packets with payload on capture-rule ports are all reported", async () => {
    const t = stack.topology;
    const settings = async (req: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const msg = await stack.bus.nc.request(
        `periscope.ctl.${NODE}.settings`,
        new TextEncoder().encode(JSON.stringify(req)),
        { timeout: 5000 },
      );
      return JSON.parse(new TextDecoder().decode(msg.data));
    };
    expect(
      (await settings({ aggregation: "medium", aggregationIntervalMs: 60_000 })).aggregation,
    ).toBe("medium");
    try {
      const urls = [1, 2, 3, 4, 5].map((i) => `http://${ip.backend}:${HTTP_PORT}/medium${i}`);
      const curl = await t.exec("frontend", [
        "curl",
        "-sS",
        "--max-time",
        "10",
        "-w",
        "%{http_code}\\n",
        ...urls.flatMap((u) => ["-o", "/dev/null", u]),
      ]);
      expect(curl.stdout.trim().split("\n")).toEqual(["200", "200", "200", "200", "200"]);
      const got = await eventually((fs) => {
        const ours = l7Of(fs, "http").filter((f) =>
          (f.l7?.record.value as { url: string }).url.includes("/medium"),
        );
        return ours.filter((f) => f.l7?.type === L7FlowType.RESPONSE).length >= 5
          ? ours
          : undefined;
      }, "L7 flows of the keep-alive connection at medium");
      const h = (f: Flow) => f.l7?.record.value as { url: string; code: number };
      expect(got.filter((f) => f.l7?.type === L7FlowType.REQUEST).map((f) => h(f).url)).toEqual(
        urls,
      );
      expect(got.filter((f) => f.l7?.type === L7FlowType.RESPONSE).map((f) => h(f).url)).toEqual(
        urls,
      );
    } finally {
      await settings({ aggregation: "none" });
    }
  }, 60_000);
});
