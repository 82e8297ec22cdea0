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
    });
    const c = parseConfig(["--queue-group=blue"], { PERISCOPE_ENRICHER_QUEUE_GROUP: "green" });
    expect(c.queueGroup).toBe("blue");
    expect(parseConfig([], { PERISCOPE_ENRICHER_QUEUE_GROUP: "green" }).queueGroup).toBe("green");
  });

  test.each([
    { argv: ["--queue-group", "a.b"], env: {}, field: "--queue-group" },
    {
      argv: [],
      env: { PERISCOPE_ENRICHER_QUEUE_GROUP: "a b" },
      field: "PERISCOPE_ENRICHER_QUEUE_GROUP",
    },
    { argv: [], env: { PERISCOPE_OPS_ADDR: "x" }, field: "PERISCOPE_OPS_ADDR" },
    { argv: ["--partitions=2"], env: {}, field: "--partitions" },
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
