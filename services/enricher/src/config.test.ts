import { describe, expect, test } from "bun:test";
import { ConfigError, parseConfig } from "./config.ts";

describe("enricher config", () => {
  test("config - defaults, environment and flags (which win)", () => {
    expect(parseConfig([], { PERISCOPE_NODE_NAME: "n1" })).toEqual({
      natsUrl: undefined,
      nodeName: "n1",
      opsAddr: "127.0.0.1:9402",
      logLevel: "info",
      queueGroup: "enrichers",
      partitions: 16,
      l7DnsPorts: [53],
      l7HttpPorts: [80, 8080],
      l7HttpHeaders: ["content-type", "user-agent", "x-request-id", "traceparent"],
    });
    const c = parseConfig(["--queue-group=blue"], { PERISCOPE_ENRICHER_QUEUE_GROUP: "green" });
    expect(c.queueGroup).toBe("blue");
    expect(parseConfig([], { PERISCOPE_ENRICHER_QUEUE_GROUP: "green" }).queueGroup).toBe("green");
    expect(parseConfig(["--partitions=4"], { PERISCOPE_PARTITIONS: "8" }).partitions).toBe(4);
  });

  test("config - L7 ports and headers, none turns parsing off", () => {
    const c = parseConfig(["--l7-http-ports=8000,8000,9000", "--l7-dns-ports=none"], {
      PERISCOPE_L7_HTTP_HEADERS: "Host, Authorization",
    });
    expect(c.l7HttpPorts).toEqual([8000, 9000]);
    expect(c.l7DnsPorts).toEqual([]);
    expect(c.l7HttpHeaders).toEqual(["host", "authorization"]);
  });

  test.each([
    { argv: ["--queue-group", "a.b"], env: {}, field: "--queue-group" },
    {
      argv: [],
      env: { PERISCOPE_ENRICHER_QUEUE_GROUP: "a b" },
      field: "PERISCOPE_ENRICHER_QUEUE_GROUP",
    },
    { argv: [], env: { PERISCOPE_OPS_ADDR: "x" }, field: "PERISCOPE_OPS_ADDR" },
    { argv: ["--partitions=0"], env: {}, field: "--partitions" },
    { argv: [], env: { PERISCOPE_PARTITIONS: "x" }, field: "PERISCOPE_PARTITIONS" },
    { argv: ["--l7-http-ports=80,x"], env: {}, field: "--l7-http-ports" },
    { argv: [], env: { PERISCOPE_L7_DNS_PORTS: "70000" }, field: "PERISCOPE_L7_DNS_PORTS" },
    { argv: ["--l7-http-headers", "a b"], env: {}, field: "--l7-http-headers" },
  ])("config - rejects $field", ({ argv, env, field }) => {
    let caught: unknown;
    try {
      parseConfig(argv, env);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).field).toBe(field);
  });
});
