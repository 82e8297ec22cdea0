import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toJson } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  GetFlowsRequestSchema,
  GetFlowsResponseSchema,
  GetNodesResponseSchema,
  NodeState,
  ServerStatusResponseSchema,
} from "@periscope/proto";
import { UsageError } from "./args.ts";
import { goDuration } from "./go-format.ts";
import { readFlowsFile } from "./input-file.ts";
import { formatNodes } from "./list.ts";
import { durationSetting, extractGlobalArgs, settingsEnv } from "./settings.ts";
import { formatStatus, formatStatusDict, formatStatusTable } from "./status.ts";

const nodes = create(GetNodesResponseSchema, {
  nodes: [
    {
      name: "node-b",
      state: NodeState.NODE_UNAVAILABLE,
      uptimeNs: 0n,
      maxFlows: 0n,
    },
    {
      name: "node-a",
      version: "periscope 0.1.0",
      state: NodeState.NODE_CONNECTED,
      uptimeNs: 3_725_400_000_000n, // 1h2m5.4s → 1h2m5s
      numFlows: 4095n,
      maxFlows: 4095n,
      seenFlows: 7450n,
      tls: { enabled: false },
    },
  ],
});

describe("cli formats (hubble's documented layouts)", () => {
  test("formats - list nodes table: sorted, AGE rounded, FLOWS/S seen/uptime, %6.2f ratio", () => {
    expect(formatNodes(nodes).split("\n")).toEqual([
      "NAME     STATUS        AGE      FLOWS/S   CURRENT/MAX-FLOWS",
      "node-a   Connected     1h2m5s   2.00      4095/4095 (100.00%)",
      "node-b   Unavailable   N/A      N/A       N/A",
    ]);
  });

  test("formats - list nodes wide adds VERSION, ADDRESS and TLS (N/A when unknown)", () => {
    expect(formatNodes(nodes, "wide").split("\n")).toEqual([
      "NAME     STATUS        AGE      FLOWS/S   CURRENT/MAX-FLOWS     VERSION           ADDRESS   TLS",
      "node-a   Connected     1h2m5s   2.00      4095/4095 (100.00%)   periscope 0.1.0             Disabled",
      "node-b   Unavailable   N/A      N/A       N/A                   N/A                         N/A",
    ]);
  });

  const status = create(ServerStatusResponseSchema, {
    numFlows: 1234n,
    maxFlows: 4095n,
    seenFlows: 123456n,
    uptimeNs: 61_500_000_000n,
    numConnectedNodes: 2,
    numUnavailableNodes: 1,
    unavailableNodes: ["node-z"],
    version: "periscope 0.1.0",
  });

  test("formats - status compact, dict and table as hubble prints them", () => {
    expect(formatStatus("localhost:4245", status).split("\n")).toEqual([
      "Healthcheck (via localhost:4245): Ok",
      "Current/Max Flows: 1,234/4,095 (30.13%)",
      "Flows/s: 2007.41",
      "Connected Nodes: 2/3",
      "Unavailable Nodes: 1",
      "  - node-z",
    ]);
    expect(formatStatusDict(status).split("\n")).toEqual([
      "          NUM FLOWS: 1,234",
      "          MAX FLOWS: 4,095",
      "         SEEN FLOWS: 123,456",
      "   FLOWS PER SECOND: N/A",
      "             UPTIME: 1m1.5s",
      "NUM CONNECTED NODES: 2",
      " NUM UNAVAIL. NODES: 1",
      "            VERSION: periscope 0.1.0",
    ]);
    expect(formatStatusTable(status).split("\n")).toEqual([
      "NUM FLOWS   MAX FLOWS   SEEN FLOWS   FLOWS PER SECOND   UPTIME   NUM CONNECTED NODES   NUM UNAVAILABLE NODES   VERSION",
      "1,234       4,095       123,456      N/A                1m1.5s   2                     1                       periscope 0.1.0",
    ]);
  });

  test.each([
    [0n, "0s"],
    [999n, "999ns"],
    [1_500n, "1.5µs"],
    [61_000_000_000n, "1m1s"],
    [3_600_000_000_000n, "1h0m0s"],
  ])("formats - Go duration %p is %p", (ns, text) => {
    expect(goDuration(ns)).toBe(text);
  });
});

describe("cli settings", () => {
  test("settings - flag over PERISCOPE_* over the config file over the default", () => {
    const dir = mkdtempSync(join(tmpdir(), "periscope-settings-"));
    try {
      const file = join(dir, "config.yaml");
      writeFileSync(file, "server: file:1\ntimeout: 2s\ntls-ca-cert-files: [a.pem, b.pem]\n");
      const env = settingsEnv(file, { PERISCOPE_SERVER: "env:1" });
      expect(env.PERISCOPE_SERVER).toBe("env:1");
      expect(env.PERISCOPE_TLS_CA_CERT_FILES).toBe("a.pem,b.pem");
      expect(durationSetting("timeout", undefined, env)).toBe(2000);
      expect(durationSetting("timeout", "250ms", env)).toBe(250);
      expect(durationSetting("request-timeout", undefined, env)).toBe(12_000);
      expect(() => durationSetting("timeout", "soon", env)).toThrow(UsageError);
      writeFileSync(file, "- not a mapping\n");
      expect(() => settingsEnv(file, {})).toThrow("expected a mapping");
      expect(settingsEnv(join(dir, "absent.yaml"), {})).toEqual({});
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("settings - global flags are taken out wherever they stand", () => {
    expect(
      extractGlobalArgs(["--timeout", "1s", "--last", "2", "--config=/x.yaml", "--", "--timeout"]),
    ).toEqual({ argv: ["--last", "2", "--", "--timeout"], config: "/x.yaml", timeout: "1s" });
  });
});

describe("cli input file", () => {
  const line = (i: number) =>
    JSON.stringify(
      toJson(
        GetFlowsResponseSchema,
        create(GetFlowsResponseSchema, {
          time: timestampFromMs(1_700_000_000_000 + i * 1000),
          responseTypes: { case: "flow", value: { uuid: `f${i}`, Summary: `n${i}` } },
        }),
      ),
    );

  test.each<[string, Parameters<typeof create<typeof GetFlowsRequestSchema>>[1], string[]]>([
    ["--last 2 keeps the last two", { number: 2n }, ["f3", "f4"]],
    ["--first 2 stops after two", { number: 2n, first: true }, ["f0", "f1"]],
    ["--all gives everything", { number: 0xffff_ffff_ffff_ffffn }, ["f0", "f1", "f2", "f3", "f4"]],
    [
      "--since/--until bound the times",
      { since: timestampFromMs(1_700_000_001_000), until: timestampFromMs(1_700_000_002_000) },
      ["f1", "f2"],
    ],
    ["filters apply", { whitelist: [{ uuid: ["f3"] }] }, ["f3"]],
  ])("input file - %s", async (_name, init, want) => {
    const dir = mkdtempSync(join(tmpdir(), "periscope-input-"));
    try {
      const file = join(dir, "f.json");
      writeFileSync(file, `${[0, 1, 2, 3, 4].map(line).join("\n")}\n`);
      const got: string[] = [];
      for await (const r of readFlowsFile(file, create(GetFlowsRequestSchema, init), () => {}))
        got.push(r.responseTypes.case === "flow" ? r.responseTypes.value.uuid : "?");
      expect(got).toEqual(want);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
