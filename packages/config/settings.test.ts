import { describe, expect, test } from "bun:test";
import { ConfigError, parseCommonConfig, readServiceSettings } from "./index.ts";

const OWN = { "max-flows": "PERISCOPE_MAX_FLOWS", "bpf-object": "PERISCOPE_BPF_OBJECT" } as const;

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("service settings", () => {
  test("service settings - flags (both forms) win over the environment; common ones come built in", () => {
    const s = readServiceSettings(OWN, ["--max-flows", "7", "--node-name=n1"], {
      PERISCOPE_MAX_FLOWS: "9",
      PERISCOPE_BPF_OBJECT: "/x.o",
      PERISCOPE_NATS_URL: "nats://h:1",
    });
    expect(s.get("max-flows")).toBe("7");
    expect(s.source("max-flows")).toBe("--max-flows");
    expect(s.get("bpf-object")).toBe("/x.o");
    expect(s.source("bpf-object")).toBe("PERISCOPE_BPF_OBJECT");
    expect(s.get("node-name")).toBe("n1");
    expect(s.get("nats-url")).toBe("nats://h:1");
    expect(s.integer("max-flows", 1, 1, 10)).toBe(7);
  });

  test("service settings - empty values count as unset; integer falls back", () => {
    const s = readServiceSettings(OWN, ["--bpf-object="], { PERISCOPE_MAX_FLOWS: "" });
    expect(s.get("bpf-object")).toBeUndefined();
    expect(s.integer("max-flows", 42, 1, 100)).toBe(42);
  });

  test.each([
    { argv: ["--bogus", "1"], env: {}, field: "--bogus" },
    { argv: ["-x"], env: {}, field: "-x" },
    { argv: ["--max-flows"], env: {}, field: "--max-flows" },
    { argv: ["stray"], env: {}, field: "argv" },
    { argv: ["--", "--max-flows=1"], env: {}, field: "argv" },
  ])("service settings - $argv is rejected naming $field", ({ argv, env, field }) => {
    const err = configErrorOf(() => readServiceSettings(OWN, argv, env));
    expect(err.field).toBe(field);
    expect(err.message).toStartWith(`${field}: `);
  });

  test.each([
    { argv: ["--max-flows=0"], env: {}, field: "--max-flows" },
    { argv: [], env: { PERISCOPE_MAX_FLOWS: "many" }, field: "PERISCOPE_MAX_FLOWS" },
  ])("service settings - a bad integer names its source $field", ({ argv, env, field }) => {
    const s = readServiceSettings(OWN, argv, env);
    expect(configErrorOf(() => s.integer("max-flows", 1, 1, 10)).field).toBe(field);
  });

  test.each([
    { argv: ["--ops-addr=x"], env: {}, field: "--ops-addr" },
    { argv: [], env: { PERISCOPE_LOG_LEVEL: "loud" }, field: "PERISCOPE_LOG_LEVEL" },
    { argv: [], env: { PERISCOPE_NATS_URL: "http://x" }, field: "PERISCOPE_NATS_URL" },
    { argv: ["--node-name", " "], env: {}, field: "--node-name" },
  ])("service settings - common config rejects $field", ({ argv, env, field }) => {
    const s = readServiceSettings(OWN, argv, env);
    expect(configErrorOf(() => parseCommonConfig(s, "127.0.0.1:1")).field).toBe(field);
  });

  test("service settings - common config defaults", () => {
    const c = parseCommonConfig(readServiceSettings({}, ["--node-name=n"], {}), "127.0.0.1:9");
    expect(c).toEqual({
      natsUrl: undefined,
      nodeName: "n",
      opsAddr: "127.0.0.1:9",
      logLevel: "info",
    });
  });

  test("service settings - redeclaring a common setting is a programming error", () => {
    expect(() => readServiceSettings({ "ops-addr": "X" }, [], {})).toThrow(TypeError);
  });
});
