import { describe, expect, test } from "bun:test";
import { hostname } from "node:os";
import {
  ConfigError,
  checkHostPort,
  checkNatsUrl,
  parseCommonConfig,
  parseHostPort,
  parseInteger,
  parseLogLevel,
  parsePositiveInteger,
  readServiceSettings,
  resolveNodeName,
} from "./index.ts";

const OWN = { "max-flows": "PERISCOPE_MAX_FLOWS" } as const;

/** The ConfigError `fn` throws (fails the test when it throws nothing or something else). */
function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("config", () => {
  test("config - error carries field, message and cause", () => {
    const cause = new Error("inner");
    const err = new ConfigError("ops-addr", "is wrong", { cause });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe("ConfigError");
    expect(err.field).toBe("ops-addr");
    expect(err.message).toBe("ops-addr: is wrong");
    expect(err.cause).toBe(cause);
  });

  test.each([
    { name: "nothing set", argv: [], env: {}, want: undefined, source: "PERISCOPE_OPS_ADDR" },
    {
      name: "environment",
      argv: [],
      env: { PERISCOPE_OPS_ADDR: "a:1" },
      want: "a:1",
      source: "PERISCOPE_OPS_ADDR",
    },
    { name: "empty env is unset", argv: [], env: { PERISCOPE_OPS_ADDR: "" }, want: undefined },
    {
      name: "--flag value",
      argv: ["--ops-addr", "b:2"],
      env: {},
      want: "b:2",
      source: "--ops-addr",
    },
    { name: "--flag=value", argv: ["--ops-addr=c:3"], env: {}, want: "c:3" },
    { name: "=value keeps later =", argv: ["--ops-addr=x=y"], env: {}, want: "x=y" },
    {
      name: "flag wins over env",
      argv: ["--ops-addr=d:4"],
      env: { PERISCOPE_OPS_ADDR: "e:5" },
      want: "d:4",
      source: "--ops-addr",
    },
    {
      name: "empty flag is unset",
      argv: ["--ops-addr="],
      env: { PERISCOPE_OPS_ADDR: "e:5" },
      want: undefined,
    },
    { name: "last flag wins", argv: ["--ops-addr=f:6", "--ops-addr", "g:7"], env: {}, want: "g:7" },
    { name: "value may look like a flag", argv: ["--ops-addr", "--x"], env: {}, want: "--x" },
  ])("config - settings read $name", ({ argv, env, want, source }) => {
    const s = readServiceSettings(OWN, argv, env);
    expect(s.get("ops-addr")).toBe(want);
    if (source !== undefined) expect(s.source("ops-addr")).toBe(source);
    expect(s.get("max-flows")).toBeUndefined();
  });

  test.each([
    { argv: ["--bogus=1"], field: "--bogus" },
    { argv: ["--ops-addr"], field: "--ops-addr" },
    { argv: ["stray"], field: "argv" },
    { argv: ["-x"], field: "-x" },
  ])("config - settings reject $argv naming $field", ({ argv, field }) => {
    const err = configErrorOf(() => readServiceSettings(OWN, argv, {}));
    expect(err.field).toBe(field);
    expect(err.message).toStartWith(`${field}: `);
  });

  test.each([
    { raw: "1", min: 1, max: 10, want: 1 },
    { raw: " 10 ", min: 1, max: 10, want: 10 },
    { raw: "0", min: 0, max: 0, want: 0 },
  ])("config - integer $raw in $min..$max", ({ raw, min, max, want }) => {
    expect(parseInteger("n", raw, min, max)).toBe(want);
  });

  test.each([
    { raw: "0", min: 1, max: 10, problem: "0 is outside 1..10" },
    { raw: "11", min: 1, max: 10, problem: "11 is outside 1..10" },
    { raw: "-1", min: 0, max: 10, problem: '"-1" is not an integer' },
    { raw: "1.5", min: 0, max: 10, problem: '"1.5" is not an integer' },
    { raw: "ten", min: 0, max: 10, problem: '"ten" is not an integer' },
    { raw: "", min: 0, max: 10, problem: '"" is not an integer' },
  ])("config - integer $raw rejected", ({ raw, min, max, problem }) => {
    expect(configErrorOf(() => parseInteger("n", raw, min, max)).message).toBe(`n: ${problem}`);
  });

  test.each([
    { raw: "1", want: 1 },
    { raw: "9007199254740991", want: Number.MAX_SAFE_INTEGER },
  ])("config - positive integer $raw", ({ raw, want }) => {
    expect(parsePositiveInteger("n", raw)).toBe(want);
  });

  test.each(["0", "9007199254740992", "x"])("config - positive integer %p rejected", (raw) => {
    expect(configErrorOf(() => parsePositiveInteger("n", raw)).field).toBe("n");
  });

  test.each([
    { raw: "127.0.0.1:9401", allowPortZero: false },
    { raw: "localhost:4245", allowPortZero: false },
    { raw: "[::1]:80", allowPortZero: false },
    { raw: ":8080", allowPortZero: false },
    { raw: "0.0.0.0:0", allowPortZero: true },
    { raw: "[fd00::1]:0", allowPortZero: true },
  ])("config - host:port $raw accepted", ({ raw, allowPortZero }) => {
    expect(checkHostPort("addr", raw, { allowPortZero })).toBe(raw);
  });

  test.each([
    { raw: "9401", allowPortZero: true },
    { raw: "host:70000", allowPortZero: true },
    { raw: "host:x", allowPortZero: true },
    { raw: "a:b:1", allowPortZero: true },
    { raw: "::1:80", allowPortZero: true },
    { raw: "", allowPortZero: true },
    { raw: "127.0.0.1:0", allowPortZero: false },
  ])("config - host:port $raw rejected", ({ raw, allowPortZero }) => {
    const err = configErrorOf(() => checkHostPort("addr", raw, { allowPortZero }));
    expect(err.field).toBe("addr");
    expect(err.message).toContain(`"${raw}"`);
  });

  test.each([
    "nats://127.0.0.1:4222",
    "tls://nats.example:4443",
    "ws://h:8080",
    "wss://h",
    "nats://[::1]:4222",
    "nats://a:1, nats://b:2",
  ])("config - nats url %p accepted", (raw) => {
    expect(checkNatsUrl("nats-url", raw)).toBe(raw);
  });

  test.each([
    "http://x:1",
    "nats://",
    "127.0.0.1:4222",
    "bogus",
    "nats://a:1,bogus",
    "nats://a:1,",
    "nats://a b",
  ])("config - nats url %p rejected", (raw) => {
    expect(configErrorOf(() => checkNatsUrl("nats-url", raw)).field).toBe("nats-url");
  });

  test.each(["fatal", "error", "warn", "info", "debug", "trace", "silent"])(
    "config - log level %p accepted",
    (raw) => {
      expect(parseLogLevel("log-level", raw)).toBe(raw as ReturnType<typeof parseLogLevel>);
    },
  );

  test.each(["loud", "INFO", "", " info"])("config - log level %p rejected", (raw) => {
    const err = configErrorOf(() => parseLogLevel("log-level", raw));
    expect(err.message).toStartWith("log-level: ");
    expect(err.message).toContain("fatal, error, warn, info, debug, trace, silent");
  });

  test.each([
    { raw: "n1", want: "n1" },
    { raw: undefined, want: hostname() },
  ])("config - node name $raw", ({ raw, want }) => {
    expect(resolveNodeName("node-name", raw)).toBe(want);
  });

  test.each(["", " ", "\t"])("config - node name %p rejected", (raw) => {
    expect(configErrorOf(() => resolveNodeName("node-name", raw)).field).toBe("node-name");
  });

  test("config - values are taken as given (no trimming)", () => {
    const s = readServiceSettings(OWN, [], { PERISCOPE_OPS_ADDR: " a:1 " });
    expect(s.get("ops-addr")).toBe(" a:1 ");
  });

  test("config - common settings defaults", () => {
    const s = readServiceSettings({}, [], {});
    expect(parseCommonConfig(s, "127.0.0.1:9999")).toEqual({
      natsUrl: undefined,
      nodeName: hostname(),
      opsAddr: "127.0.0.1:9999",
      logLevel: "info",
    });
  });

  test("config - common settings from flags and environment", () => {
    const s = readServiceSettings({}, ["--node-name=n1", "--ops-addr", "[::1]:0"], {
      PERISCOPE_NATS_URL: "nats://nats:4222",
      PERISCOPE_NODE_NAME: "loses",
      PERISCOPE_LOG_LEVEL: "debug",
    });
    expect(parseCommonConfig(s, "127.0.0.1:9999")).toEqual({
      natsUrl: "nats://nats:4222",
      nodeName: "n1",
      opsAddr: "[::1]:0",
      logLevel: "debug",
    });
  });

  test.each([
    { argv: ["--nats-url=http://x"], env: {}, field: "--nats-url" },
    { argv: ["--node-name", " "], env: {}, field: "--node-name" },
    { argv: [], env: { PERISCOPE_OPS_ADDR: "x" }, field: "PERISCOPE_OPS_ADDR" },
    { argv: ["--log-level=loud"], env: {}, field: "--log-level" },
    { argv: [], env: { PERISCOPE_LOG_LEVEL: "x" }, field: "PERISCOPE_LOG_LEVEL" },
  ])("config - common settings reject $argv $env naming $field", ({ argv, env, field }) => {
    const s = readServiceSettings({}, argv, env);
    expect(configErrorOf(() => parseCommonConfig(s, "127.0.0.1:1")).field).toBe(field);
  });

  test.each([
    ["127.0.0.1:9401", { host: "127.0.0.1", port: 9401 }],
    ["[::1]:0", { host: "::1", port: 0 }],
    [":8080", { host: "0.0.0.0", port: 8080 }],
    ["localhost:4245", { host: "localhost", port: 4245 }],
  ])("config - host:port %s parses", (addr, want) => {
    expect(parseHostPort(addr)).toEqual(want);
  });

  test.each(["127.0.0.1", "host:99999", "host:x", "", "a:b:1"])(
    "config - host:port %p is rejected naming the field",
    (addr) => {
      expect(configErrorOf(() => parseHostPort(addr, "listen-addr")).field).toBe("listen-addr");
    },
  );
});
