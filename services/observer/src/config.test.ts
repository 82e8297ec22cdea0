import { describe, expect, test } from "bun:test";
import { ConfigError, OBSERVER_DEFAULTS, parseConfig } from "./config.ts";

describe("observer config", () => {
  test("config - defaults with an empty environment", () => {
    const c = parseConfig([], { PERISCOPE_NODE_NAME: "n1" });
    expect(c).toEqual({
      natsUrl: undefined,
      nodeName: "n1",
      listenAddr: OBSERVER_DEFAULTS.listenAddr,
      opsAddr: OBSERVER_DEFAULTS.opsAddr,
      maxFlows: 4095,
      sortBufferMs: 100,
      historySinceSec: 3600,
      maxRequestBytes: 4 * 1024 * 1024,
      maxFilters: 128,
      maxConcurrentStreams: 128,
      recorderAddr: OBSERVER_DEFAULTS.recorderAddr,
      logLevel: "info",
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  test("config - flags win over environment", () => {
    const c = parseConfig(
      ["--listen-address", "127.0.0.1:0", "--max-flows=16", "--nats-url", "nats://127.0.0.1:5000"],
      {
        PERISCOPE_LISTEN_ADDR: "0.0.0.0:1",
        PERISCOPE_MAX_FLOWS: "8",
        PERISCOPE_LOG_LEVEL: "debug",
      },
    );
    expect(c.listenAddr).toBe("127.0.0.1:0");
    expect(c.maxFlows).toBe(16);
    expect(c.natsUrl).toBe("nats://127.0.0.1:5000");
    expect(c.logLevel).toBe("debug");
  });

  test("config - request size and filter caps from flags and environment", () => {
    const c = parseConfig(["--max-filters", "7"], { PERISCOPE_MAX_REQUEST_BYTES: "65536" });
    expect(c.maxFilters).toBe(7);
    expect(c.maxRequestBytes).toBe(65536);
  });

  test.each([
    { argv: [], env: { PERISCOPE_MAX_FLOWS: "zero" }, field: "PERISCOPE_MAX_FLOWS" },
    { argv: ["--max-flows", "0"], env: {}, field: "--max-flows" },
    { argv: ["--sort-buffer-ms", "-1"], env: {}, field: "--sort-buffer-ms" },
    { argv: [], env: { PERISCOPE_SORT_BUFFER_MS: "soon" }, field: "PERISCOPE_SORT_BUFFER_MS" },
    { argv: [], env: { PERISCOPE_LISTEN_ADDR: "nohost" }, field: "PERISCOPE_LISTEN_ADDR" },
    { argv: ["--ops-addr", "1.2.3.4:99999"], env: {}, field: "--ops-addr" },
    { argv: [], env: { PERISCOPE_LOG_LEVEL: "loud" }, field: "PERISCOPE_LOG_LEVEL" },
    { argv: [], env: { PERISCOPE_NATS_URL: "http://x" }, field: "PERISCOPE_NATS_URL" },
    { argv: ["--bogus", "1"], env: {}, field: "--bogus" },
    { argv: ["--max-request-bytes", "10"], env: {}, field: "--max-request-bytes" },
    { argv: [], env: { PERISCOPE_MAX_FILTERS: "0" }, field: "PERISCOPE_MAX_FILTERS" },
    { argv: ["--node-name"], env: {}, field: "--node-name" },
  ])("config - rejects bad $field", ({ argv, env, field }) => {
    let caught: unknown;
    try {
      parseConfig(argv, env);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).field).toBe(field);
    expect((caught as ConfigError).message).toStartWith(field);
  });
});
