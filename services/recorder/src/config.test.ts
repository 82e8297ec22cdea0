import { describe, expect, test } from "bun:test";
import { hostname } from "node:os";
import { ConfigError, DEFAULT_OPS_ADDR, parseConfig, RECORDER_DEFAULTS } from "./config.ts";

describe("config", () => {
  test("config - defaults need no settings", () => {
    const c = parseConfig([], {});
    expect(c).toEqual({
      natsUrl: undefined,
      nodeName: hostname(),
      opsAddr: DEFAULT_OPS_ADDR,
      logLevel: "info",
      ...RECORDER_DEFAULTS,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  test("config - reads the environment, flags win", () => {
    const c = parseConfig(["--node-name", "flag-node", "--log-level=debug"], {
      PERISCOPE_NATS_URL: "nats://nats:4222",
      PERISCOPE_NODE_NAME: "env-node",
      PERISCOPE_OPS_ADDR: "0.0.0.0:9999",
    });
    expect(c).toEqual({
      natsUrl: "nats://nats:4222",
      nodeName: "flag-node",
      opsAddr: "0.0.0.0:9999",
      logLevel: "debug",
      ...RECORDER_DEFAULTS,
    });
  });

  test.each([
    [["--ops-addr", "nonsense"], {}, "--ops-addr"],
    [[], { PERISCOPE_OPS_ADDR: "127.0.0.1:70000" }, "PERISCOPE_OPS_ADDR"],
    [["--log-level=loud"], {}, "--log-level"],
    [[], { PERISCOPE_NATS_URL: "http://x:1" }, "PERISCOPE_NATS_URL"],
    [["--nats-url", "nats://a:1,bogus"], {}, "--nats-url"],
    [["--node-name", " "], {}, "--node-name"],
    [["--bogus", "1"], {}, "--bogus"],
    [["--ops-addr"], {}, "--ops-addr"],
    [["--listen-address", "x"], {}, "--listen-address"],
    [[], { PERISCOPE_RECORDER_LEASE_MS: "10" }, "PERISCOPE_RECORDER_LEASE_MS"],
    [["--storage-dir", " "], {}, "--storage-dir"],
    [["positional"], {}, "argv"],
  ] as const)("config - bad input %p %p names the field %p", (argv, env, field) => {
    let caught: unknown;
    try {
      parseConfig(argv, env);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).field).toBe(field);
    expect((caught as ConfigError).message).toStartWith(`${field}: `);
  });
});
