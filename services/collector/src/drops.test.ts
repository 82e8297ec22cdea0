import { describe, expect, test } from "bun:test";
import { ConfigError, parseConfig } from "./config.ts";
import { SKIPPED_DROP_REASONS } from "./drops.ts";

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
