import { afterEach, describe, expect, test } from "bun:test";
import { createLogger, createMetrics, startOpsServer, TelemetryError } from "./index.ts";
import type { OpsServer } from "./ops.ts";

/** Default prom-client gauges that promtool's linter flags for their `_total` suffix. */
const KNOWN_PROM_CLIENT_LINT = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

const quietLog = createLogger("telemetry-test", "silent");

describe("telemetry", () => {
  const servers: OpsServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.stop();
  });

  test("logger - writes JSON lines with the service field to stdout", async () => {
    const script = `import { createLogger } from ${JSON.stringify(`${import.meta.dir}/index.ts`)};
      createLogger("probe", "debug").debug({ answer: 42 }, "hello");`;
    const proc = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    expect(code).toBe(0);
    const line = JSON.parse(out.trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ service: "probe", msg: "hello", answer: 42, level: 20 });
    expect(typeof line.time).toBe("string");
  });

  test("logger - rejects an unknown level", () => {
    expect(() => createLogger("x", "loud")).toThrow(TelemetryError);
  });

  test("metrics - prefixes names and registers in the service registry", async () => {
    const m = createMetrics("my-svc");
    const c = m.counter("frames_total", "Frames.", ["kind"]);
    c.inc({ kind: "a" }, 3);
    m.gauge("queue_depth", "Depth.").set(7);
    m.histogram("latency_seconds", "Latency.", [], [0.1, 1]).observe(0.5);
    const text = await m.registry.metrics();
    expect(text).toContain('periscope_my_svc_frames_total{kind="a"} 3');
    expect(text).toContain("periscope_my_svc_queue_depth 7");
    expect(text).toContain('periscope_my_svc_latency_seconds_bucket{le="1"} 1');
    expect(text).toContain("process_cpu_user_seconds_total");
    expect(() => m.counter("bad name", "x")).toThrow(TelemetryError);
  });

  test("ops - serves metrics, health and readiness over real HTTP", async () => {
    const m = createMetrics("opstest");
    m.counter("scrapes_total", "Scrapes.").inc();
    let ready = false;
    const ops = await startOpsServer({
      addr: "127.0.0.1:0",
      registry: m.registry,
      ready: () => ready,
      log: quietLog,
    });
    servers.push(ops);
    expect(ops.port).toBeGreaterThan(0);
    expect((await fetch(`${ops.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${ops.url}/readyz`)).status).toBe(503);
    ready = true;
    expect((await fetch(`${ops.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${ops.url}/nope`)).status).toBe(404);
    const res = await fetch(`${ops.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(m.registry.contentType);
    const body = await res.text();
    expect(body).toContain("periscope_opstest_scrapes_total 1");

    const promtool = Bun.which("promtool");
    if (!promtool) {
      console.warn("SKIP promtool check: promtool not installed (scripts/setup.sh installs it)");
      return;
    }
    const check = Bun.spawn([promtool, "check", "metrics"], {
      stdin: new TextEncoder().encode(body),
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([
      new Response(check.stdout).text(),
      new Response(check.stderr).text(),
      check.exited,
    ]);
    // Exit 1 is a parse error; 3 means lint findings, which are allowed only for the
    // gauges prom-client itself names `*_total` (see prom-client lib/metrics/process*.js).
    expect(code === 0 || code === 3).toBe(true);
    const findings = `${out}${err}`.split("\n").filter((l) => l.trim() !== "");
    const ours = findings.filter((l) => !KNOWN_PROM_CLIENT_LINT.some((n) => l.startsWith(`${n} `)));
    expect(ours).toEqual([]);
  });

  test("ops - a taken port is a TelemetryError", async () => {
    const first = await startOpsServer({
      addr: "127.0.0.1:0",
      registry: createMetrics("a").registry,
      ready: () => true,
      log: quietLog,
    });
    servers.push(first);
    await expect(
      startOpsServer({
        addr: `127.0.0.1:${first.port}`,
        registry: createMetrics("b").registry,
        ready: () => true,
        log: quietLog,
      }),
    ).rejects.toThrow(TelemetryError);
  });

  test("ops - stop closes the listener and is safe twice", async () => {
    const ops = await startOpsServer({
      addr: "127.0.0.1:0",
      registry: createMetrics("c").registry,
      ready: () => true,
      log: quietLog,
    });
    await ops.stop();
    await ops.stop();
    await expect(fetch(`${ops.url}/healthz`)).rejects.toThrow();
  });
});
