import { describe, expect, test } from "bun:test";
import { ConfigError } from "@periscope/config";
import { createLogger } from "@periscope/telemetry";
import { promtoolCheckMetrics } from "@periscope/testing";
import { parseConfig } from "../config.ts";
import { HubbleMetrics, parseMetricsSpec, startHubbleMetrics } from "./index.ts";
import { dnsFlow, httpFlow, tcpFlow } from "./testing.ts";

const plain = (raw: string) =>
  parseMetricsSpec("--metrics", raw).map((s) => [s.name, Object.fromEntries(s.options)]);

describe("hubble metrics spec", () => {
  test("hubble metrics spec - comma and space separated handlers with options", () => {
    expect(plain("dns:query;ignoreAAAA,drop,tcp,flow,port-distribution,icmp,http")).toEqual([
      ["dns", { query: "", ignoreaaaa: "" }],
      ["drop", {}],
      ["tcp", {}],
      ["flow", {}],
      ["port-distribution", {}],
      ["icmp", {}],
      ["http", {}],
    ]);
    expect(
      plain("  dns:query drop  flow:sourceContext=namespace|pod;destinationContext=pod "),
    ).toEqual([
      ["dns", { query: "" }],
      ["drop", {}],
      ["flow", { sourcecontext: "namespace|pod", destinationcontext: "pod" }],
    ]);
    expect(plain("")).toEqual([]);
  });

  test("hubble metrics spec - labelsContext keeps its comma list, the next handler follows", () => {
    expect(
      plain("flow:labelsContext=source_namespace,destination_namespace,traffic_direction,drop,tcp"),
    ).toEqual([
      ["flow", { labelscontext: "source_namespace,destination_namespace,traffic_direction" }],
      ["drop", {}],
      ["tcp", {}],
    ]);
  });

  test.each([
    ["kafka", `--metrics: unknown metric handler "kafka"`],
    ["dns,dns:query", `--metrics: metric handler "dns" given twice`],
    ["drop:query", `--metrics: metric handler "drop" has no option "query"`],
    ["flow:sourceContext=namespace|planet", `unknown context "planet"`],
    ["tcp:labelsContext=source_pod,source_color", `unknown metric handler "source_color"`],
    ["tcp:labelsContext=source_color", `invalid labelsContext value "source_color"`],
    ["http,httpV2", `"http" and "httpV2" cannot both be enabled`],
  ])("hubble metrics spec - %s is refused naming what is wrong", (raw, message) => {
    let err: unknown;
    try {
      parseMetricsSpec("--metrics", raw);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(message);
  });

  test("hubble metrics spec - enricher settings: flag wins over PERISCOPE_METRICS, errors name their source", () => {
    const env = { PERISCOPE_NODE_NAME: "n1", PERISCOPE_METRICS: "drop" };
    const fromEnv = parseConfig([], env);
    expect(fromEnv.metrics?.map((s) => s.name)).toEqual(["drop"]);
    expect(fromEnv.metricsServer).toBeUndefined();
    const fromFlags = parseConfig(
      [
        "--metrics",
        "flow,tcp",
        "--metrics-server",
        "127.0.0.1:0",
        "--metrics-max-label-sets",
        "10",
      ],
      env,
    );
    expect(fromFlags.metrics?.map((s) => s.name)).toEqual(["flow", "tcp"]);
    expect(fromFlags.metricsServer).toBe("127.0.0.1:0");
    expect(fromFlags.metricsMaxLabelSets).toBe(10);
    expect(() => parseConfig([], { ...env, PERISCOPE_METRICS: "flows" })).toThrow(
      `PERISCOPE_METRICS: unknown metric handler "flows"`,
    );
    expect(() => parseConfig(["--metrics-server", "nine"], env)).toThrow("--metrics-server");
    expect(() => parseConfig(["--metrics-max-label-sets", "0"], env)).toThrow(
      "--metrics-max-label-sets",
    );
  });

  test("hubble metrics spec - a taken metrics port is a startup error naming the server", async () => {
    const log = createLogger("t", "silent");
    const first = await startHubbleMetrics({ specs: [], addr: "127.0.0.1:0", log });
    try {
      const res = await fetch(`http://127.0.0.1:${first.port}/metrics`);
      expect(await res.text()).toContain("# TYPE hubble_lost_events_total counter");
      await expect(
        startHubbleMetrics({ specs: [], addr: `127.0.0.1:${first.port}`, log }),
      ).rejects.toThrow(`hubble metrics server cannot listen on 127.0.0.1:${first.port}`);
    } finally {
      await first.stop();
    }
  });

  test("hubble metrics spec - promtool accepts the exposition of every handler", async () => {
    const m = new HubbleMetrics({
      specs: parseMetricsSpec(
        "--metrics",
        "dns:query;ignoreAAAA,drop,tcp,flow:sourceContext=pod;destinationContext=dns|ip,port-distribution,icmp,http",
      ),
      log: createLogger("t", "silent"),
    });
    for (const f of [
      tcpFlow(),
      dnsFlow({ query: 'we"ird\\name.', qtypes: ["A"] }, false),
      dnsFlow({ query: "a.", qtypes: ["A"], ips: ["1.2.3.4"], rrtypes: ["A"] }, true),
      httpFlow(),
      httpFlow({ code: 200, latencyNs: 1_000_000n }),
    ]) {
      m.observeFlow(f);
    }
    const text = await m.registry.metrics();
    expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, output: "" });
  });
});
