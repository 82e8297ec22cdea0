/**
 * The CLI against a real observer (and NATS), the way a hubble user types it: list
 * nodes/namespaces and status in every -o format, namespace flags, input files, raw
 * filters, watch peers, reflect, the config file and the --timeout deadline.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startHeartbeat, subjects } from "@periscope/bus";
import {
  AgentEventType,
  DebugEventType,
  FlowBatchSchema,
  GetAgentEventsResponseSchema,
  GetFlowsResponseSchema,
  IPVersion,
  Verdict,
} from "@periscope/proto";
import {
  freePort,
  type LocalNats,
  startLocalNats,
  waitFor,
  waitForValue,
} from "@periscope/testing";
import { type CliIo, runCli } from "./main.ts";
import { type ObserverProcess, spawnObserver, stopObserver } from "./testing.ts";

let nats: LocalNats;
let nc: NatsConnection;
let observer: ObserverProcess | undefined;
let server = "";
let dir = "";

function batch(node: string, pods: string[]): Uint8Array {
  const responses = pods.map((pod, i) => {
    const time = timestampFromMs(Date.now() + i);
    return create(GetFlowsResponseSchema, {
      nodeName: node,
      time,
      responseTypes: {
        case: "flow",
        value: {
          time,
          uuid: `${node}-${pod}`,
          nodeName: node,
          verdict: Verdict.FORWARDED,
          IP: { source: `10.8.0.${i + 1}`, destination: "10.8.0.100", ipVersion: IPVersion.IPv4 },
          l4: {
            protocol: {
              case: "TCP",
              value: { sourcePort: 40000 + i, destinationPort: 80, flags: { SYN: true } },
            },
          },
          source: { namespace: "demo", podName: pod, identity: 1000 + i },
          destination: { namespace: "shop", podName: "server", identity: 2000 },
          eventType: { type: 4, subType: 11 },
          isReply: false,
          Summary: "TCP Flags: SYN",
        },
      },
    });
  });
  return toBinary(FlowBatchSchema, create(FlowBatchSchema, { responses }));
}

/** Runs the CLI in this process; resolves with its exit code and output lines. */
async function cli(args: string[], extra: Partial<CliIo> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, {
    out: (l) => out.push(...l.split("\n")),
    err: (l) => err.push(l),
    signal: extra.signal ?? AbortSignal.timeout(15_000),
    server,
    ...extra,
  });
  return { code, out, err: err.join("\n") };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "periscope-cli-habits-"));
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  server = `127.0.0.1:${await freePort()}`;
  observer = await spawnObserver({
    natsUrl: nats.url,
    server,
    nodeName: "cli-habits-observer",
    path: process.env.PATH ?? "/usr/bin:/bin",
  });
  nc.publish(subjects.flows("node-1"), batch("node-1", ["client-a", "client-b", "client-c"]));
  await nc.flush();
  await waitFor(async () => (await cli(["observe", "--last", "10"])).out.length === 3, {
    what: "3 flows in the observer",
  });
}, 30_000);

afterAll(async () => {
  await stopObserver(observer);
  await nc?.close();
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("cli hubble habits", () => {
  test("habits - list nodes prints hubble's columns, wide adds version/address/TLS, json the nodes", async () => {
    // AGE and FLOWS/S are N/A until the node is a second old (uptime rounded to seconds).
    const table = await waitForValue(
      async () => {
        const r = await cli(["list", "nodes"]);
        return r.out[1]?.includes("N/A") ? undefined : r;
      },
      { what: "node-1 one second old" },
    );
    expect(table.code).toBe(0);
    expect(table.out[0]).toMatch(
      /^NAME {3}\s*STATUS {3}\s*AGE {3}\s*FLOWS\/S {3}\s*CURRENT\/MAX-FLOWS$/,
    );
    expect(table.out[1]).toMatch(
      /^node-1 {3}\s*Connected {3}\s*\d+s {3}\s*\d+\.\d\d {3}\s*3\/4095 \( {2}0\.07%\)$/,
    );
    // Columns line up: every row's STATUS starts where the header's does.
    expect(table.out[1]?.indexOf("Connected")).toBe(table.out[0]?.indexOf("STATUS"));
    const wide = await cli(["list", "node", "-o", "wide"]);
    expect(wide.out[0]).toMatch(/CURRENT\/MAX-FLOWS {3}VERSION {3}\s*ADDRESS {3}\s*TLS$/);
    expect(wide.out[1]).toMatch(/Disabled$/);
    const json = await cli(["list", "nodes", "-o", "json"]);
    const nodes = JSON.parse(json.out.join("\n")) as Record<string, unknown>[];
    expect(nodes).toHaveLength(1);
    expect(nodes[0]).toMatchObject({
      name: "node-1",
      state: "NODE_CONNECTED",
      num_flows: "3",
      max_flows: "4095",
      seen_flows: "3",
      tls: {},
    });
    expect((await cli(["list", "nodes", "-o", "yaml"])).code).toBe(2);
  });

  test("habits - list namespaces in table and json", async () => {
    const table = await cli(["list", "namespaces"]);
    expect(table.out).toEqual(["NAMESPACE", "demo", "shop"]);
    const json = JSON.parse((await cli(["list", "namespaces", "-o", "json"])).out.join("\n"));
    expect(json).toEqual([{ namespace: "demo" }, { namespace: "shop" }]);
  });

  test("habits - status -o json, table and dict", async () => {
    const json = await cli(["status", "-o", "json"]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out[0] ?? "")).toMatchObject({ num_flows: "3", max_flows: "4095" });
    const table = await cli(["status", "-o", "table"]);
    expect(table.out[0]).toMatch(
      /^NUM FLOWS {3}MAX FLOWS {3}SEEN FLOWS {3}FLOWS PER SECOND {3}UPTIME/,
    );
    expect(table.out[1]).toMatch(/^3 {11}4,095 {7}3 {12}/);
    const dict = await cli(["status", "-o", "dict"]);
    expect(dict.out.slice(0, 3)).toEqual([
      "          NUM FLOWS: 3",
      "          MAX FLOWS: 4,095",
      "         SEEN FLOWS: 3",
    ]);
    expect(dict.out[4]).toMatch(/^ {13}UPTIME: (\d+m)?\d+(\.\d+)?m?s$/);
  });

  test.each<[string, string[], string[]]>([
    ["-n ns --pod x is ns/x", ["-n", "demo", "--pod", "client-a"], ["client-a"]],
    ["-A matches every namespace", ["-A"], ["client-a", "client-b", "client-c"]],
    ["--to-namespace shop", ["--to-namespace", "shop", "--last", "1"], ["client-c"]],
    ["--not -n demo drops them all", ["--not", "--from-namespace", "demo"], []],
    ["--identity", ["--from-identity", "1001"], ["client-b"]],
    ["--allowlist raw JSON", ["--allowlist", '{"source_pod":["demo/client-c"]}'], ["client-c"]],
    ["--tcp-flags", ["--tcp-flags", "syn", "--first", "1"], ["client-a"]],
  ])("habits - observe %s", async (_name, args, pods) => {
    const r = await cli(["observe", ...args, "-o", "jsonpb"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const got = r.out.filter((l) => l !== "").map((l) => JSON.parse(l).flow.source.pod_name);
    expect(got).toEqual(pods);
  });

  test("habits - -o table, dict and compact print hubble's layouts for the same flows", async () => {
    const table = await cli(["observe", "-o", "table", "--time-format", "RFC3339"]);
    expect(table.out[0]).toMatch(
      /^TIMESTAMP {3}\s*SOURCE {3}\s*DESTINATION {3}\s*TYPE {3}\s*VERDICT {3}\s*SUMMARY$/,
    );
    expect(table.out[1]).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {3}demo\/client-a:40000 {3}shop\/server:80 {3}to-network {3}FORWARDED {3}TCP Flags: SYN$/,
    );
    const dict = await cli(["observe", "-o", "dict", "--last", "2", "--print-node-name"]);
    expect(dict.out).toHaveLength(15);
    expect(dict.out[7]).toBe("------------");
    expect(dict.out.slice(1, 3)).toEqual([
      "       NODE: node-1",
      "     SOURCE: demo/client-b:40001",
    ]);
    const compact = await cli(["observe", "--last", "1", "--numeric"]);
    expect(compact.out[0]).toMatch(
      /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d\.\d{3}: 10\.8\.0\.3:40002 \(ID:1002\) -> 10\.8\.0\.100:80 \(ID:2000\) to-network FORWARDED \(TCP Flags: SYN\)$/,
    );
  });

  test("habits - jsonpb output read back with --input-file (a file and stdin) prints the same", async () => {
    const saved = await cli(["observe", "-o", "jsonpb", "--all"]);
    const file = join(dir, "flows.json");
    writeFileSync(file, `${saved.out.join("\n")}\nnot json\n`);
    const live = await cli(["observe", "--from-pod", "demo/client-b"]);
    const fromFile = await cli(["observe", "--input-file", file, "--from-pod", "demo/client-b"]);
    expect(fromFile.code).toBe(0);
    expect(fromFile.out).toEqual(live.out);
    expect(fromFile.err).toContain("line 4: not a GetFlowsResponse");
    const last = await cli(["observe", "--input-file", "-", "--last", "2", "-o", "jsonpb"], {
      stdin: Readable.from([`${saved.out.join("\n")}\n`]),
    });
    expect(last.out).toEqual(saved.out.slice(1));
    const missing = await cli(["observe", "--input-file", join(dir, "absent.json")]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain("ENOENT");
  });

  test("habits - observe agent-events and debug-events in compact, dict, table and json", async () => {
    const time = timestampFromMs(Date.UTC(2024, 10, 22, 2, 50, 1, 123));
    nc.publish(
      subjects.agent("node-1"),
      toBinary(
        GetAgentEventsResponseSchema,
        create(GetAgentEventsResponseSchema, {
          nodeName: "node-1",
          time,
          agentEvent: {
            type: AgentEventType.ENDPOINT_CREATED,
            notification: {
              case: "endpointUpdate",
              value: { id: 7n, namespace: "demo", podName: "web" },
            },
          },
        }),
      ),
    );
    nc.publish(
      subjects.flows("node-1"),
      toBinary(
        FlowBatchSchema,
        create(FlowBatchSchema, {
          debugEvents: [
            {
              nodeName: "node-1",
              time,
              debugEvent: {
                type: DebugEventType.DBG_GENERIC,
                source: { ID: 12, namespace: "demo", podName: "web" },
                hash: 0xbeef,
                cpu: 1,
                message: "hello",
              },
            },
          ],
        }),
      ),
    );
    await nc.flush();
    const agent = await waitForValue(
      async () => {
        const r = await cli(["observe", "agent-events", "--print-node-name"]);
        return r.out.length > 0 ? r : undefined;
      },
      { what: "the agent event" },
    );
    expect(agent.out).toEqual([
      "Nov 22 02:50:01.123 [node-1]: ENDPOINT_CREATED (id: 7, namespace: demo, pod name: web)",
    ]);
    const debug = await waitForValue(
      async () => {
        const r = await cli(["observe", "debug-events"]);
        return r.out.length > 0 ? r : undefined;
      },
      { what: "the debug event" },
    );
    expect(debug.out).toEqual([
      "Nov 22 02:50:01.123: demo/web (ID: 12) DBG_GENERIC MARK: 0xbeef CPU: 01 (hello)",
    ]);
    expect((await cli(["observe", "agent-events", "-o", "dict"])).out).toEqual([
      "  TIMESTAMP: Nov 22 02:50:01.123",
      "       TYPE: ENDPOINT_CREATED",
      "    DETAILS: id: 7, namespace: demo, pod name: web",
    ]);
    expect((await cli(["observe", "debug-events", "-o", "table"])).out).toEqual([
      // hubble's header has an empty column after FROM: Go's tabwriter pads it to 3.
      "TIMESTAMP             FROM                   TYPE          CPU/MARK    MESSAGE",
      "Nov 22 02:50:01.123   demo/web (ID: 12)      DBG_GENERIC   01 0xbeef   hello",
    ]);
    const json = JSON.parse((await cli(["observe", "agent-events", "-o", "json"])).out[0] ?? "");
    expect(json).toMatchObject({ node_name: "node-1", agent_event: { type: "ENDPOINT_CREATED" } });
  });

  test("habits - --print-raw-filters prints the filters without asking a server", async () => {
    const r = await cli([
      "observe",
      "--server",
      "127.0.0.1:1",
      "--print-raw-filters",
      "--to-ip",
      "10.8.0.100",
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual(["allowlist:", `    - '{"destination_ip":["10.8.0.100"]}'`]);
  });

  test("habits - --print-raw-filters output is a config file observe takes its filters from", async () => {
    const printed = await cli(["observe", "--print-raw-filters", "--from-pod", "demo/client-b"]);
    const file = join(dir, "filters.yaml");
    writeFileSync(file, `${printed.out.join("\n")}\n`);
    const viaFile = await cli(["observe", "--config", file, "-o", "jsonpb"], { env: {} });
    expect(viaFile.code).toBe(0);
    expect(viaFile.out.map((l) => JSON.parse(l).flow.source.pod_name)).toEqual(["client-b"]);
    // A flag of the same kind replaces the file's list.
    const flag = await cli(
      [
        "observe",
        "--config",
        file,
        "-o",
        "jsonpb",
        "--allowlist",
        '{"source_pod":["demo/client-c"]}',
      ],
      { env: {} },
    );
    expect(flag.out.map((l) => JSON.parse(l).flow.source.pod_name)).toEqual(["client-c"]);
  });

  test("habits - watch peers prints PEER_ADDED for a live collector", async () => {
    const beat = startHeartbeat(nc, { service: "collector", node: "peer-node", intervalMs: 200 });
    const ac = new AbortController();
    const out: string[] = [];
    try {
      const running = runCli(["watch", "peers"], {
        out: (l) => out.push(l),
        err: (l) => out.push(`ERR ${l}`),
        signal: ac.signal,
        server,
      });
      await waitFor(() => out.some((l) => l.includes("peer-node")), { what: "peer-node added" });
      ac.abort();
      expect(await running).toBe(0);
      expect(out).toContain("PEER_ADDED    peer-node");
    } finally {
      ac.abort();
      await beat.stop();
    }
  });

  test("habits - reflect prints the observer's file descriptors with their dependencies", async () => {
    const r = await cli(["reflect"]);
    expect(r.code).toBe(0);
    const names = r.out.map((l) => (JSON.parse(l) as { name: string }).name);
    expect(names).toContain("observer/observer.proto");
    expect(names).toContain("flow/flow.proto");
    expect(new Set(names).size).toBe(names.length);
  });

  test("habits - config set/get/view/reset and settings from the file, env over file", async () => {
    const file = join(dir, "config.yaml");
    expect(
      (await cli(["config", "set", "server", server, "--config", file], { env: {} })).code,
    ).toBe(0);
    expect(
      (await cli(["config", "set", "request-timeout", "3s", "--config", file], { env: {} })).code,
    ).toBe(0);
    expect(readFileSync(file, "utf8")).toBe(`server: ${server}\nrequest-timeout: 3s\n`);
    const get = await cli(["config", "get", "server", "--config", file], { env: {} });
    expect(get.out).toEqual([server]);
    const view = await cli(["config", "view", "--config", file], {
      env: { PERISCOPE_TLS: "true" },
    });
    expect(view.out).toContain(`server: ${server}`);
    expect(view.out).toContain("tls: true");
    // The file's server is used when no --server is given (io.server points nowhere).
    const viaFile = await cli(["observe", "--last", "1", "--config", file], {
      server: "127.0.0.1:1",
      env: {},
    });
    expect(viaFile.code).toBe(0);
    expect(viaFile.out[0]).toContain("demo/client-c");
    const envWins = await cli(["status", "--config", file], {
      server: "127.0.0.1:1",
      env: { PERISCOPE_SERVER: `127.0.0.1:${await freePort()}` },
    });
    expect(envWins.code).toBe(1);
    expect((await cli(["config", "set", "tls", "maybe", "--config", file], { env: {} })).code).toBe(
      2,
    );
    expect((await cli(["config", "set", "colour", "x", "--config", file], { env: {} })).code).toBe(
      2,
    );
    await cli(["config", "reset", "--config", file], { env: {} });
    expect(readFileSync(file, "utf8")).toBe("");
  });

  test("habits - --timeout ends a call the server never answers", async () => {
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const addr = silent.address();
    const port = typeof addr === "object" && addr ? addr.port : 0;
    try {
      const started = performance.now();
      const r = await cli(["observe", "-f", "--server", `127.0.0.1:${port}`, "--timeout", "300ms"]);
      expect(r.code).toBe(1);
      expect(r.err).toContain("deadline_exceeded: no answer from the server within 300ms");
      expect(performance.now() - started).toBeLessThan(5_000);
      const s = await cli([
        "status",
        "--server",
        `127.0.0.1:${port}`,
        "--request-timeout",
        "300ms",
      ]);
      expect(s.code).toBe(1);
      expect(s.err).toContain("deadline_exceeded");
    } finally {
      silent.close();
    }
  });
});
