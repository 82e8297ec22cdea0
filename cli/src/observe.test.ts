import { describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  DropReason,
  FlowFilterSchema,
  GetFlowsRequestSchema,
  IPVersion,
  TrafficDirection,
  Verdict,
} from "@periscope/proto";
import { UsageError } from "./args.ts";
import { DEFAULT_FIELD_MASK, parseObserveArgs, rawFiltersYaml } from "./observe.ts";
import { parseDurationMs } from "./time.ts";

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const ff = (init: MessageInitShape<typeof FlowFilterSchema>) => create(FlowFilterSchema, init);

describe("cli observe flags", () => {
  test.each<{ argv: string[]; want: MessageInitShape<typeof GetFlowsRequestSchema> }>([
    { argv: [], want: { number: 20n } },
    { argv: ["--last", "5"], want: { number: 5n } },
    { argv: ["--first", "7"], want: { number: 7n, first: true } },
    { argv: ["--all"], want: { number: 0xffff_ffff_ffff_ffffn } },
    { argv: ["-f"], want: { follow: true } },
    { argv: ["--follow", "--last", "3"], want: { follow: true, number: 3n } },
    { argv: ["--since", "5m"], want: { since: timestampFromMs(NOW - 300_000) } },
    {
      argv: ["--since", "2024-05-01T10:00:00Z", "--until", "1h30m"],
      want: {
        since: timestampFromMs(Date.UTC(2024, 4, 1, 10)),
        until: timestampFromMs(NOW - 5_400_000),
      },
    },
    {
      argv: ["--from-ip", "10.0.0.1"],
      want: { number: 20n, whitelist: [ff({ sourceIp: ["10.0.0.1"] })] },
    },
    {
      argv: ["--ip", "10.0.0.1"],
      want: {
        number: 20n,
        whitelist: [ff({ sourceIp: ["10.0.0.1"] }), ff({ destinationIp: ["10.0.0.1"] })],
      },
    },
    {
      argv: ["--protocol", "tcp", "--ip", "10.0.0.1", "--verdict", "dropped"],
      want: {
        number: 20n,
        whitelist: [
          ff({ protocol: ["tcp"], sourceIp: ["10.0.0.1"], verdict: [Verdict.DROPPED] }),
          ff({ protocol: ["tcp"], destinationIp: ["10.0.0.1"], verdict: [Verdict.DROPPED] }),
        ],
      },
    },
    {
      argv: ["--from-pod", "demo/client", "--to-port", "80", "--to-ip=10.0.0.2"],
      want: {
        number: 20n,
        whitelist: [
          ff({ sourcePod: ["demo/client"], destinationPort: ["80"], destinationIp: ["10.0.0.2"] }),
        ],
      },
    },
    {
      argv: ["--pod", "demo/web", "--port", "443"],
      want: {
        number: 20n,
        whitelist: [
          ff({ sourcePod: ["demo/web"], sourcePort: ["443"] }),
          ff({ destinationPod: ["demo/web"], destinationPort: ["443"] }),
        ],
      },
    },
    {
      argv: ["--namespace", "demo", "--ip-version", "v6"],
      want: {
        number: 20n,
        whitelist: [
          ff({ sourcePod: ["demo/"], ipVersion: [IPVersion.IPv6] }),
          ff({ destinationPod: ["demo/"], ipVersion: [IPVersion.IPv6] }),
        ],
      },
    },
    {
      argv: ["--protocol", "udp", "--not", "--verdict", "FORWARDED"],
      want: {
        number: 20n,
        whitelist: [ff({ protocol: ["udp"] })],
        blacklist: [ff({ verdict: [Verdict.FORWARDED] })],
      },
    },
    {
      argv: ["--not", "--ip", "10.0.0.9"],
      want: {
        number: 20n,
        blacklist: [ff({ sourceIp: ["10.0.0.9"] }), ff({ destinationIp: ["10.0.0.9"] })],
      },
    },
    {
      argv: ["--type", "trace:to-network", "--node-name", "node-*"],
      want: {
        number: 20n,
        whitelist: [
          ff({ eventType: [{ type: 4, matchSubType: true, subType: 11 }], nodeName: ["node-*"] }),
        ],
      },
    },
    {
      argv: ["--cel-expression", "_flow.verdict == Verdict.DROPPED", "--cel-expression", "true"],
      want: {
        number: 20n,
        whitelist: [
          ff({ experimental: { celExpression: ["_flow.verdict == Verdict.DROPPED", "true"] } }),
        ],
      },
    },
    {
      argv: ["--ip", "10.0.0.1", "--not", "--cel-expression", "has(_flow.l7)"],
      want: {
        number: 20n,
        whitelist: [ff({ sourceIp: ["10.0.0.1"] }), ff({ destinationIp: ["10.0.0.1"] })],
        blacklist: [ff({ experimental: { celExpression: ["has(_flow.l7)"] } })],
      },
    },
    { argv: ["--first", "0"], want: { number: 20n } },
    { argv: ["--last", "0", "-f"], want: { follow: true } },
    { argv: ["-f", "--until", "1h"], want: { follow: true } },
    { argv: ["--since", "1h", "--all"], want: { since: timestampFromMs(NOW - 3_600_000) } },
    {
      argv: ["--since", "2024-05-01", "--until", "2024-05-01T11Z"],
      want: {
        since: timestampFromMs(Date.UTC(2024, 4, 1)),
        until: timestampFromMs(Date.UTC(2024, 4, 1, 11)),
      },
    },
    {
      argv: ["-n", "demo", "--pod", "web"],
      want: {
        number: 20n,
        whitelist: [ff({ sourcePod: ["demo/web"] }), ff({ destinationPod: ["demo/web"] })],
      },
    },
    {
      argv: ["-A"],
      want: { number: 20n, whitelist: [ff({ sourcePod: ["/"] }), ff({ destinationPod: ["/"] })] },
    },
    {
      argv: ["--from-all-namespaces", "--to-namespace", "kube-system"],
      want: {
        number: 20n,
        whitelist: [ff({ sourcePod: ["/"], destinationPod: ["kube-system/"] })],
      },
    },
    {
      argv: ["--service", "demo/api", "--to-workload", "Deployment/web", "--identity", "world"],
      want: {
        number: 20n,
        whitelist: [
          ff({
            sourceService: ["demo/api"],
            destinationWorkload: [{ kind: "Deployment", name: "web" }],
            sourceIdentity: [2],
          }),
          ff({
            destinationService: ["demo/api"],
            destinationWorkload: [{ kind: "Deployment", name: "web" }],
            destinationIdentity: [2],
          }),
        ],
      },
    },
    {
      argv: ["-4", "--tcp-flags", "syn,ack", "--interface", "eth0", "--encrypted"],
      want: {
        number: 20n,
        whitelist: [
          ff({
            ipVersion: [IPVersion.IPv4],
            tcpFlags: [{ SYN: true, ACK: true }],
            interface: [{ name: "eth0" }],
            encrypted: [true],
          }),
        ],
      },
    },
    {
      argv: [
        "--drop-reason-desc",
        "POLICY_DENIED",
        "--http-url",
        "/api",
        "--http-header",
        "x-id:7",
        "--node-label",
        "zone=a",
        "--snat-ip",
        "10.0.0.9",
        "--trace-id",
        "abc",
        "--ip-trace-id",
        "42",
        "--cluster",
        "c1",
        "--traffic-direction",
        "egress",
      ],
      want: {
        number: 20n,
        whitelist: [
          ff({
            dropReasonDesc: [DropReason.POLICY_DENIED],
            httpUrl: ["/api"],
            httpHeader: [{ key: "x-id", value: "7" }],
            nodeLabels: ["zone=a"],
            sourceIpXlated: ["10.0.0.9"],
            traceId: ["abc"],
            ipTraceId: [42n],
            sourceClusterName: ["c1"],
            trafficDirection: [TrafficDirection.EGRESS],
          }),
          ff({
            dropReasonDesc: [DropReason.POLICY_DENIED],
            httpUrl: ["/api"],
            httpHeader: [{ key: "x-id", value: "7" }],
            nodeLabels: ["zone=a"],
            sourceIpXlated: ["10.0.0.9"],
            traceId: ["abc"],
            ipTraceId: [42n],
            destinationClusterName: ["c1"],
            trafficDirection: [TrafficDirection.EGRESS],
          }),
        ],
      },
    },
    {
      argv: [
        "--allowlist",
        '{"source_ip":["1.1.1.1"]}{"destination_port":["53"]}',
        "--denylist",
        '{"verdict":["DROPPED"]}',
      ],
      want: {
        number: 20n,
        whitelist: [ff({ sourceIp: ["1.1.1.1"] }), ff({ destinationPort: ["53"] })],
        blacklist: [ff({ verdict: [Verdict.DROPPED] })],
      },
    },
  ])("cli - observe $argv builds the hubble request", ({ argv, want }) => {
    const got = parseObserveArgs(argv, "localhost:4245", NOW);
    expect(got.request).toEqual(create(GetFlowsRequestSchema, want));
  });

  test.each<[string[], string[] | undefined]>([
    [["-o", "json"], undefined],
    [
      ["-o", "jsonpb", "--field-mask", "time,source.pod_name", "--field-mask", "verdict"],
      ["time", "source.pod_name", "verdict"],
    ],
    [["-o", "dict"], undefined],
    [["-o", "dict", "--use-default-field-masks"], [...DEFAULT_FIELD_MASK]],
    [["--use-default-field-masks=false"], undefined],
  ])("cli - observe %p asks for field mask %p", (argv, paths) => {
    expect(parseObserveArgs(argv, "localhost:4245", NOW).request.fieldMask?.paths).toEqual(paths);
  });

  test("cli - observe --print-raw-filters prints hubble's YAML", () => {
    const opts = parseObserveArgs(
      ["--print-raw-filters", "--ip", "10.0.0.1", "--not", "--verdict", "DROPPED"],
      "localhost:4245",
      NOW,
    );
    expect(opts.printRawFilters).toBe(true);
    expect(rawFiltersYaml(opts.request)).toBe(
      [
        "allowlist:",
        `    - '{"source_ip":["10.0.0.1"]}'`,
        `    - '{"destination_ip":["10.0.0.1"]}'`,
        "denylist:",
        `    - '{"verdict":["DROPPED"]}'`,
      ].join("\n"),
    );
  });

  test.each([
    { argv: ["--last", "x"], msg: "--last" },
    { argv: ["--first", "1", "--follow"], msg: "--first" },
    { argv: ["--first", "1", "--last", "2"], msg: "cannot set both --first and --last" },
    { argv: ["--last", "1", "--all"], msg: "cannot set both --last and --all" },
    { argv: ["-n", "a", "--pod", "b/x"], msg: "namespace conflict" },
    { argv: ["-n", "a", "--from-pod", "x"], msg: "cannot be combined" },
    { argv: ["--not", "--not", "--ip", "1.1.1.1"], msg: "consecutive --not" },
    { argv: ["--identity", "nobody"], msg: "security identity" },
    { argv: ["--tcp-flags", "syn,bogus"], msg: "unknown tcp flag: bogus" },
    { argv: ["--http-header", "novalue"], msg: "--http-header" },
    { argv: ["--ip-trace-id", "0"], msg: "--ip-trace-id" },
    { argv: ["--drop-reason-desc", "NOPE"], msg: "--drop-reason-desc" },
    { argv: ["--allowlist", "{bad"], msg: "invalid --allowlist flag" },
    {
      argv: ["-o", "compact", "--field-mask", "time"],
      msg: "not compatible with custom field mask",
    },
    { argv: ["-o", "json", "--field-mask", "nope"], msg: "invalid path" },
    { argv: ["-o", "table", "-f"], msg: "not compatible with follow" },
    { argv: ["--time-format", "Kitchen"], msg: "--time-format" },
    { argv: ["--color", "sometimes"], msg: "--color" },
    { argv: ["--since", "2024-05-01T10"], msg: "--since" },
    { argv: ["--since", "yesterday-ish"], msg: "--since" },
    { argv: ["--verdict", "MAYBE"], msg: "--verdict" },
    { argv: ["--type", "bogus"], msg: "--type" },
    { argv: ["--ip", "1.1.1.1", "--from-ip", "2.2.2.2"], msg: "cannot be combined" },
    { argv: ["--protocol", "tcp", "--not"], msg: "--not" },
    { argv: ["--output", "yaml"], msg: "--output" },
    { argv: ["--frobnicate"], msg: "unknown flag" },
    { argv: ["--from-ip"], msg: "needs an argument" },
    { argv: ["stray"], msg: "unexpected argument" },
  ])("cli - observe $argv is a usage error", ({ argv, msg }) => {
    expect(() => parseObserveArgs(argv, "localhost:4245", NOW)).toThrow(UsageError);
    expect(() => parseObserveArgs(argv, "localhost:4245", NOW)).toThrow(msg);
  });

  test.each([
    [[], "compact"],
    [["-j"], "json"],
    [["-j", "-o", "dict"], "dict"],
  ] as const)("cli - observe %p prints %s", (argv, output) => {
    expect(parseObserveArgs([...argv], "localhost:4245", NOW).output).toBe(output);
  });

  test.each([
    ["--server", "127.0.0.1:9999", "127.0.0.1:9999"],
    ["-o", "json", "localhost:4245"],
  ])("cli - observe %s %s talks to %s", (flag, value, server) => {
    expect(parseObserveArgs([flag, value], "localhost:4245", NOW).server).toBe(server);
  });

  test.each([
    ["5m", 300_000],
    ["1h30m", 5_400_000],
    ["1.5s", 1500],
    ["300ms", 300],
    ["0", 0],
    ["5", undefined],
    ["m", undefined],
  ])("cli - duration %p is %p ms", (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms);
  });
});
