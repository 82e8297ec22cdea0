import { describe, expect, test } from "bun:test";
import { ConfigError, parseConfig } from "./config.ts";

const parse = (argv: string[], env: Record<string, string> = {}) => parseConfig(argv, env).netflow;

describe("netflow config", () => {
  test("netflow config - flags, their environment twins, and --ipfix-collector turning export on", () => {
    expect(
      parse([
        "--flow-export=on",
        "--flow-active-timeout=2s",
        "--flow-idle-timeout=500ms",
        "--flow-table-entries=64",
        "--flow-dedupe=mark",
        "--agent-ip=10.1.2.3",
      ]),
    ).toEqual({
      enabled: true,
      activeTimeoutMs: 2000,
      idleTimeoutMs: 500,
      tableEntries: 64,
      dedupe: "mark",
      queueRecords: 100_000,
      agentIp: "10.1.2.3",
    });
    const fromEnv = parse([], {
      PERISCOPE_IPFIX_COLLECTOR: "[::1]:4739",
      PERISCOPE_FLOW_DEDUPE: "off",
      PERISCOPE_FLOW_QUEUE_RECORDS: "10",
    });
    expect(fromEnv.enabled).toBe(true);
    expect(fromEnv.ipfixCollector).toEqual({ host: "::1", port: 4739 });
    expect(fromEnv.dedupe).toBe("off");
    expect(fromEnv.queueRecords).toBe(10);
    expect(parse(["--ipfix-collector=127.0.0.1:9995", "--flow-export=off"]).enabled).toBe(false);
  });

  test.each([
    [["--flow-dedupe=first"], "--flow-dedupe", "not one of drop, mark, off"],
    [["--flow-active-timeout=soon"], "--flow-active-timeout", "is not a duration"],
    [["--flow-idle-timeout=10ms"], "--flow-idle-timeout", "out of range"],
    [["--ipfix-collector=nowhere"], "--ipfix-collector", "is not host:port"],
    [["--ipfix-collector=h:0"], "--ipfix-collector", "port must be 1..65535"],
    [["--flow-table-entries=0"], "--flow-table-entries", ""],
    [["--agent-ip=host"], "--agent-ip", "is not an IP address"],
    [["--flow-export=maybe"], "--flow-export", "is not on or off"],
  ])("netflow config - %p is refused naming %s", (argv, field, message) => {
    let err: unknown;
    try {
      parse(argv);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
    expect((err as Error).message).toContain(message);
  });
});
