import { describe, expect, test } from "bun:test";
import { TraceProgram } from "@periscope/bpf";
import { createLogger, createMetrics } from "@periscope/telemetry";
import { ConfigError, DEFAULT_BPF_OBJECT, parseConfig } from "./config.ts";
import { SKIPPED_DROP_REASONS, startKernelDrops } from "./drops.ts";

const isRoot = process.getuid?.() === 0;

describe("collector drops config", () => {
  test.each<[string[], Record<string, string>, string]>([
    [[], {}, "all"],
    [["--drops=watched"], {}, "watched"],
    [[], { PERISCOPE_DROPS: "off" }, "off"],
    [["--drops", "all"], { PERISCOPE_DROPS: "off" }, "all"],
  ])("collector drops - %j %j is %s", (argv, env, want) => {
    expect(parseConfig(argv, env).drops).toBe(want as "all");
  });

  test.each<[string[], Record<string, string>, string]>([
    [["--drops=some"], {}, "--drops"],
    [[], { PERISCOPE_DROPS: "ALL" }, "PERISCOPE_DROPS"],
  ])("collector drops - %j %j is refused naming %s", (argv, env, where) => {
    let err: unknown;
    try {
      parseConfig(argv, env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(String(err)).toContain(where);
    expect(String(err)).toContain("all, watched, off");
  });

  test("collector drops - not-a-drop, catch-all and tc reasons are skipped, real drops are not", () => {
    for (const r of ["NOT_DROPPED_YET", "CONSUMED", "NOT_SPECIFIED", "TC_INGRESS", "TC_EGRESS"]) {
      expect(SKIPPED_DROP_REASONS.has(r)).toBe(true);
    }
    for (const r of ["NO_SOCKET", "NETFILTER_DROP", "TCP_CSUM", "QDISC_DROP"]) {
      expect(SKIPPED_DROP_REASONS.has(r)).toBe(false);
    }
  });
});

describe.skipIf(!isRoot)("collector drops program", () => {
  const base = { nodeName: "psct-drops", captureLen: 128, bpfObjectPath: DEFAULT_BPF_OBJECT };
  const loaded = async (m: ReturnType<typeof createMetrics>) =>
    (await m.registry.getSingleMetricAsString("periscope_collector_drop_program_loaded")).trim();

  test.each<["all" | "watched" | "off", boolean]>([
    ["all", true],
    ["watched", true],
    ["off", false],
  ])("collector drops - mode %s loads the program: %s", async (mode, want) => {
    const trace = TraceProgram.load({ ringBufferBytes: 1 << 16 });
    const metrics = createMetrics("collector");
    try {
      const drops = startKernelDrops(
        { ...base, drops: mode },
        trace,
        metrics,
        createLogger("collector", "silent"),
      );
      expect(drops !== undefined).toBe(want);
      expect(await loaded(metrics)).toEndWith(`drop_program_loaded ${want ? 1 : 0}`);
      drops?.close();
      drops?.close();
    } finally {
      trace.close();
    }
  });

  test("collector drops - a missing drop object leaves tracing running without drops", async () => {
    const trace = TraceProgram.load({ ringBufferBytes: 1 << 16 });
    const metrics = createMetrics("collector");
    try {
      const drops = startKernelDrops(
        { ...base, drops: "all", bpfObjectPath: "/nonexistent/trace.bpf.o" },
        trace,
        metrics,
        createLogger("collector", "silent"),
      );
      expect(drops).toBeUndefined();
      expect(await loaded(metrics)).toEndWith("drop_program_loaded 0");
    } finally {
      trace.close();
    }
  });
});
