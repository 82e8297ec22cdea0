import { describe, expect, test } from "bun:test";
import { hostname } from "node:os";
import { resolve } from "node:path";
import {
  ConfigError,
  DEFAULT_BPF_OBJECT,
  type InterfaceTarget,
  parseConfig,
  parseInterfaces,
} from "./config.ts";

/** The default capture rules: DNS and HTTP heads without flags. */
const DEFAULT_RULES = [
  { proto: 17, port: 53, len: 512 },
  { proto: 6, port: 53, len: 512 },
  { proto: 6, port: 80, len: 1024 },
  { proto: 6, port: 8080, len: 1024 },
];

describe("config", () => {
  test("config - defaults with no flags and no environment", () => {
    const c = parseConfig([], {});
    expect(c).toEqual({
      natsUrl: undefined,
      nodeName: hostname(),
      interfaces: [],
      captureLen: 128,
      partitions: 16,
      frameMaxRecords: 256,
      frameMaxDelayMs: 50,
      publishQueueFrames: 1024,
      bpfObjectPath: DEFAULT_BPF_OBJECT,
      opsAddr: "127.0.0.1:9401",
      logLevel: "info",
      attachRetryMs: 5000,
      discoveryIntervalMs: 30_000,
      drops: "all",
      aggregation: "medium",
      aggregationIntervalMs: 5000,
      captureRules: DEFAULT_RULES,
      ctEntries: 65536,
      netflow: {
        enabled: false,
        activeTimeoutMs: 5000,
        idleTimeoutMs: 15_000,
        tableEntries: 16384,
        dedupe: "drop",
        queueRecords: 100_000,
        agentIp: c.netflow.agentIp,
      },
      processEvents: { enabled: true, maxArgs: 1024 },
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.interfaces)).toBe(true);
  });

  test("config - default bpf object is <repo>/bpf/build/trace.bpf.o", () => {
    expect(DEFAULT_BPF_OBJECT).toBe(resolve(import.meta.dir, "../../../bpf/build/trace.bpf.o"));
    expect(DEFAULT_BPF_OBJECT.endsWith("/bpf/build/trace.bpf.o")).toBe(true);
  });

  test.each([
    {
      name: "environment",
      argv: [],
      env: {
        PERISCOPE_NATS_URL: "nats://10.0.0.1:4222",
        PERISCOPE_NODE_NAME: "n1",
        PERISCOPE_INTERFACES: "eth0, ns1/veth-a",
        PERISCOPE_CAPTURE_LEN: "1536",
        PERISCOPE_PARTITIONS: "8",
        PERISCOPE_FRAME_MAX_RECORDS: "64",
        PERISCOPE_FRAME_MAX_DELAY_MS: "10",
        PERISCOPE_BPF_OBJECT: "/tmp/x.o",
        PERISCOPE_OPS_ADDR: "0.0.0.0:0",
        PERISCOPE_LOG_LEVEL: "debug",
      },
    },
    {
      name: "flags",
      argv: [
        "--nats-url=nats://10.0.0.1:4222",
        "--node-name",
        "n1",
        "--interfaces=eth0,ns1/veth-a",
        "--capture-len",
        "1536",
        "--partitions=8",
        "--frame-max-records=64",
        "--frame-max-delay-ms=10",
        "--bpf-object=/tmp/x.o",
        "--ops-addr=0.0.0.0:0",
        "--log-level=debug",
      ],
      env: { PERISCOPE_NODE_NAME: "loses-to-flag", PERISCOPE_PARTITIONS: "2" },
    },
  ])("config - reads every setting from $name", ({ argv, env }) => {
    expect(parseConfig(argv, env)).toMatchObject({
      natsUrl: "nats://10.0.0.1:4222",
      nodeName: "n1",
      interfaces: [{ ifname: "eth0" }, { ifname: "veth-a", netns: "ns1" }],
      captureLen: 1536,
      partitions: 8,
      frameMaxRecords: 64,
      frameMaxDelayMs: 10,
      bpfObjectPath: "/tmp/x.o",
      opsAddr: "0.0.0.0:0",
      logLevel: "debug",
    });
  });

  test.each([
    { argv: ["--capture-len=0"], field: "--capture-len" },
    { argv: ["--capture-len=1537"], field: "--capture-len" },
    { argv: ["--capture-len=12x"], field: "--capture-len" },
    { argv: ["--capture-len=-5"], field: "--capture-len" },
    { argv: ["--partitions=0"], field: "--partitions" },
    { argv: ["--frame-max-records=0"], field: "--frame-max-records" },
    { argv: ["--frame-max-delay-ms=1.5"], field: "--frame-max-delay-ms" },
    { argv: ["--interfaces=eth0,eth0"], field: "--interfaces" },
    { argv: ["--interfaces=averyveryverylongname"], field: "--interfaces" },
    { argv: ["--interfaces=eth:0"], field: "--interfaces" },
    { argv: ["--interfaces=ns/a/b"], field: "--interfaces" },
    { argv: ["--interfaces=../eth0"], field: "--interfaces" },
    { argv: ["--interfaces=ns/"], field: "--interfaces" },
    { argv: ["--interfaces=/eth0"], field: "--interfaces" },
    { argv: ["--interfaces=veth[0"], field: "--interfaces" },
    { argv: ["--interfaces=ns/eth[]"], field: "--interfaces" },
    { argv: ["--interfaces=ns*/"], field: "--interfaces" },
    { argv: ["--interfaces=e:*"], field: "--interfaces" },
    { argv: ["--interfaces=veth*,veth*"], field: "--interfaces" },
    { argv: ["--discovery-interval-ms=99"], field: "--discovery-interval-ms" },
    { argv: ["--discovery-interval-ms=soon"], field: "--discovery-interval-ms" },
    { argv: ["--nats-url=http://x:1"], field: "--nats-url" },
    { argv: ["--nats-url=nats://"], field: "--nats-url" },
    { argv: ["--ops-addr=9401"], field: "--ops-addr" },
    { argv: ["--ops-addr=127.0.0.1:70000"], field: "--ops-addr" },
    { argv: ["--log-level=loud"], field: "--log-level" },
    { argv: ["--no-such-flag=1"], field: "--no-such-flag" },
    { argv: ["--partitions"], field: "--partitions" },
    { argv: ["stray"], field: "argv" },
  ])("config - rejects $argv naming $field", ({ argv, field }) => {
    let error: unknown;
    try {
      parseConfig(argv, {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe(field);
    expect((error as ConfigError).message).toContain(field);
  });

  test.each([
    { argv: [], env: {}, want: 30_000 },
    { argv: [], env: { PERISCOPE_DISCOVERY_INTERVAL_MS: "250" }, want: 250 },
    {
      argv: ["--discovery-interval-ms=500"],
      env: { PERISCOPE_DISCOVERY_INTERVAL_MS: "250" },
      want: 500,
    },
  ])("config - discovery interval $argv $env is $want ms", ({ argv, env, want }) => {
    expect(parseConfig(argv, env).discoveryIntervalMs).toBe(want);
  });

  test("config - aggregation, interval, repeated capture rules and table size from flags", () => {
    const c = parseConfig(
      [
        "--aggregation",
        "none",
        "--aggregation-interval=2s",
        "--capture-rule",
        "udp/53=512",
        "--capture-rule=tcp=96",
        "--ct-entries=1024",
      ],
      { PERISCOPE_AGGREGATION: "maximum", PERISCOPE_CAPTURE_RULES: "sctp=1" },
    );
    expect(c.aggregation).toBe("none");
    expect(c.aggregationIntervalMs).toBe(2000);
    expect(c.captureRules).toEqual([
      { proto: 17, port: 53, len: 512 },
      { proto: 6, port: 0, len: 96 },
    ]);
    expect(c.ctEntries).toBe(1024);
  });

  test("config - default capture rules: given rules replace them, none turns them off, never below --capture-len", () => {
    expect(parseConfig([], {}).captureRules).toEqual(DEFAULT_RULES);
    expect(parseConfig(["--capture-rule=tcp/443=64"], {}).captureRules).toEqual([
      { proto: 6, port: 443, len: 64 },
    ]);
    expect(parseConfig(["--capture-rule=none"], {}).captureRules).toEqual([]);
    expect(parseConfig([], { PERISCOPE_CAPTURE_RULES: "none" }).captureRules).toEqual([]);
    expect(parseConfig(["--capture-len=768"], {}).captureRules.map((r) => r.len)).toEqual([
      768, 768, 1024, 1024,
    ]);
  });

  test("config - aggregation settings from the environment", () => {
    const c = parseConfig([], {
      PERISCOPE_AGGREGATION: "LOW",
      PERISCOPE_AGGREGATION_INTERVAL: "250ms",
      PERISCOPE_CAPTURE_RULES: "udp/53=512, any/443=64",
    });
    expect(c.aggregation).toBe("low");
    expect(c.aggregationIntervalMs).toBe(250);
    expect(c.captureRules).toEqual([
      { proto: 17, port: 53, len: 512 },
      { proto: 0, port: 443, len: 64 },
    ]);
  });

  test.each([
    [["--aggregation=loud"], {}, /^--aggregation: "loud" is not one of none, low, medium, maximum/],
    [[], { PERISCOPE_AGGREGATION_INTERVAL: "soon" }, /^PERISCOPE_AGGREGATION_INTERVAL: "soon"/],
    [["--capture-rule=udp/53=0"], {}, /^--capture-rule: "udp\/53=0": len must be 1\.\.1536/],
    [
      [],
      { PERISCOPE_CAPTURE_RULES: "gre=5" },
      /^PERISCOPE_CAPTURE_RULES: "gre=5": unknown protocol/,
    ],
    [["--ct-entries=0"], {}, /^--ct-entries/],
  ] as const)("config - bad aggregation setting %p %p is refused by name", (argv, env, want) => {
    expect(() => parseConfig(argv, env)).toThrow(want);
  });

  test("config - bad environment value names the variable", () => {
    expect(() => parseConfig([], { PERISCOPE_PARTITIONS: "many" })).toThrow(
      /^PERISCOPE_PARTITIONS: "many" is not an integer/,
    );
  });

  test.each<{ raw: string; want: InterfaceTarget[] }>([
    { raw: "", want: [] },
    { raw: " , ,", want: [] },
    { raw: "lo", want: [{ ifname: "lo" }] },
    { raw: "psct-ab12/veth0", want: [{ ifname: "veth0", netns: "psct-ab12" }] },
    { raw: "a,b/a", want: [{ ifname: "a" }, { ifname: "a", netns: "b" }] },
    { raw: "veth*", want: [{ ifname: "veth*" }] },
    { raw: "mynetns/eth*", want: [{ ifname: "eth*", netns: "mynetns" }] },
    { raw: "mynetns/*", want: [{ ifname: "*", netns: "mynetns" }] },
    { raw: "pod-*/eth0", want: [{ ifname: "eth0", netns: "pod-*" }] },
    { raw: "eth[0-3], lxc?", want: [{ ifname: "eth[0-3]" }, { ifname: "lxc?" }] },
    { raw: "a-very-long-glob-over-15*", want: [{ ifname: "a-very-long-glob-over-15*" }] },
  ])("config - interfaces $raw", ({ raw, want }) => {
    expect(parseInterfaces(raw)).toEqual(want);
  });
});
