/**
 * The observer under bad input and abusive requests, as real processes: a real
 * nats-server, the observer started as `bun services/observer/src/main.ts`, bad payloads
 * published on the real flows subject, requests from grpc-js, connect-es and the CLI.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import { freePort, type LocalNats, Supervisor, startLocalNats, waitFor } from "@periscope/devstack";
import { FlowBatchSchema, FlowFilterSchema, LostEventSource, Observer } from "@periscope/proto";
import { testFlowResponse } from "../services/observer/src/testing.ts";
import { sumMetric } from "./harness.ts";

const ROOT = resolve(import.meta.dir, "..");
const CHILD_PATH = `${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`;

/** One observer process and what a test needs to talk to it. */
interface ObserverProc {
  readonly name: string;
  readonly addr: string;
  readonly ops: number;
  readonly client: ReturnType<typeof createClient<typeof Observer>>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  pid(): number;
  lines(): string[];
}

let nats: LocalNats;
let nc: NatsConnection;
const sup = new Supervisor({ sink: () => undefined, stopTimeoutMs: 8000, keepLines: 5000 });

async function startObserverProc(name: string, env: Record<string, string>): Promise<ObserverProc> {
  const addr = `127.0.0.1:${await freePort()}`;
  const ops = await freePort();
  sup.start(name, ["bun", "run", join(ROOT, "services/observer/src/main.ts")], {
    env: {
      PERISCOPE_NATS_URL: nats.url,
      PERISCOPE_NODE_NAME: name,
      PERISCOPE_LISTEN_ADDR: addr,
      PERISCOPE_OPS_ADDR: `127.0.0.1:${ops}`,
      PERISCOPE_SORT_BUFFER_MS: "0",
      ...env,
    },
    cwd: ROOT,
  });
  await waitFor(
    async () => {
      const p = sup.get(name);
      if (p && p.exitCode() !== null) throw new Error(`${name} exited:\n${p.lines().join("\n")}`);
      return (await fetch(`http://127.0.0.1:${ops}/readyz`).catch(() => undefined))?.ok === true;
    },
    { timeoutMs: 30_000, what: `${name} ready` },
  );
  return {
    name,
    addr,
    ops,
    client: createClient(Observer, createGrpcTransport({ baseUrl: `http://${addr}` })),
    metric: async (m, labels = {}) =>
      sumMetric(await (await fetch(`http://127.0.0.1:${ops}/metrics`)).text(), m, labels),
    pid: () => sup.get(name)?.pid ?? 0,
    lines: () => sup.get(name)?.lines() ?? [],
  };
}

/** Peak resident set size of a process, bytes (VmHWM). */
function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

async function publishFlows(node: string, srcs: string[]): Promise<void> {
  const batch = create(FlowBatchSchema, {
    responses: srcs.map((src, i) => testFlowResponse({ timeMs: Date.now() + i, src, node })),
  });
  nc.publish(subjects.flows(node), toBinary(FlowBatchSchema, batch));
  await nc.flush();
}

/** Protobuf bytes: a varint, a length-delimited field. */
const varint = (n: number): number[] => (n < 0x80 ? [n] : [(n & 0x7f) | 0x80, ...varint(n >>> 7)]);
const len = (field: number, body: number[]): number[] => [
  ...varint((field << 3) | 2),
  ...varint(body.length),
  ...body,
];

/**
 * A 31-byte FlowBatch whose one flow has a time and a node name (so the observer's own
 * reader takes it) and ends in an l4.TCP whose varint is cut off: decoders fail on it.
 */
function craftedBatch(): Uint8Array {
  const time = len(1, [0x08, ...varint(Math.floor(Date.now() / 1000))]);
  const node = len(11, [...new TextEncoder().encode("crafted-xyz")]);
  const flow = [...time, ...node, ...len(6, len(1, [0x08, 0x80]))];
  return Uint8Array.from(len(1, len(1, flow)));
}

/** grpc-js call of GetFlows with a request body of our own bytes. */
function rawGetFlows(addr: string, body: Buffer): Promise<grpc.StatusObject> {
  const client = new grpc.Client(addr, grpc.credentials.createInsecure());
  const call = client.makeServerStreamRequest(
    "/observer.Observer/GetFlows",
    (b: Buffer) => b,
    (b: Buffer) => b,
    body,
  );
  return new Promise<grpc.StatusObject>((done) => {
    call.on("data", () => undefined);
    call.on("error", () => undefined);
    call.on("status", (s: grpc.StatusObject) => {
      client.close();
      // grpc-message is percent-encoded on the wire; this path hands it over as is.
      done({ ...s, details: decodeURIComponent(s.details) });
    });
  });
}

let main: ObserverProc;

beforeAll(async () => {
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  main = await startObserverProc("faults-main", {});
}, 60_000);

afterAll(async () => {
  await sup.stop();
  await nc?.close();
  await nats?.stop();
});

describe("observer faults", () => {
  test("faults - a flow that does not decode is dropped at ingest, counted, logged and reported lost", async () => {
    const crafted = craftedBatch();
    expect(crafted.length).toBe(31);
    const errorsBefore = await main.metric("periscope_observer_errors_total", {
      kind: "malformed_event",
    });
    const cli = Bun.spawn([join(ROOT, "periscope"), "observe", "--server", main.addr, "-f"], {
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: CHILD_PATH },
    });
    let out = "";
    let errOut = "";
    const reading = (async () => {
      for await (const chunk of cli.stdout) out += new TextDecoder().decode(chunk);
    })();
    const readingErr = (async () => {
      for await (const chunk of cli.stderr) errOut += new TextDecoder().decode(chunk);
    })();
    try {
      await waitFor(async () => (await main.metric("periscope_observer_active_streams")) >= 1, {
        what: "CLI follow stream",
      });
      nc.publish(subjects.flows("node-c"), crafted);
      await publishFlows("node-c", ["10.31.0.1"]);
      await waitFor(() => out.includes("10.31.0.1"), {
        what: "the CLI to print the good flow",
      }).catch((e: unknown) => {
        throw new Error(
          `CLI stdout:\n${out}\nstderr:\n${errOut}\nobserver:\n${main.lines().slice(-10).join("\n")}`,
          { cause: e },
        );
      });
      expect(cli.exitCode).toBeNull(); // still following
      expect(out).toContain("EVENTS LOST");
      expect(
        await main.metric("periscope_observer_errors_total", { kind: "malformed_event" }),
      ).toBe(errorsBefore + 1);
      expect(
        await main.metric("periscope_observer_events_lost_total", { where: "observer_malformed" }),
      ).toBeGreaterThanOrEqual(1);
      // An unfiltered GetFlows over everything decodes in connect-es (fromBinary).
      const got = [];
      for await (const r of main.client.getFlows({ number: 100n })) got.push(r);
      const lost = got.filter((r) => r.responseTypes.case === "lostEvents");
      expect(lost.length).toBeGreaterThanOrEqual(1);
      const le = lost[0]?.responseTypes.value as { source: number; numEventsLost: bigint };
      expect(le.source).toBe(LostEventSource.UNKNOWN_LOST_EVENT_SOURCE);
      expect(le.numEventsLost).toBe(1n);
      const line = main.lines().find((l) => l.includes("undecodable event"));
      expect(line).toContain("event 0: flow.l4.TCP.source_port: truncated varint");
    } finally {
      cli.kill("SIGKILL");
      await reading;
      await readingErr;
    }
  }, 60_000);

  test("faults - a 200 MiB GetFlows request ends with ResourceExhausted and RSS stays bounded", async () => {
    const before = peakRss(main.pid());
    const big = Buffer.alloc(200 * 1024 * 1024 + 8);
    big.set(Uint8Array.from([0xfa, 0x06, ...varint(big.length - 7)].slice(0, 7)), 0);
    const t0 = performance.now();
    const status = await rawGetFlows(main.addr, big);
    const ms = performance.now() - t0;
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.details).toContain("4194304");
    const after = peakRss(main.pid());
    console.log(
      `200 MiB request: ${status.details} in ${ms.toFixed(0)} ms; observer peak RSS ${(before / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MiB`,
    );
    expect(after - before).toBeLessThan(64 * 2 ** 20);
    const status2 = await main.client.serverStatus({});
    expect(status2.version).toStartWith("periscope ");
    expect(
      await main.metric("periscope_observer_requests_total", {
        method: "GetFlows",
        code: "resource_exhausted",
      }),
    ).toBeGreaterThanOrEqual(1);
  }, 60_000);

  test("faults - more filters than the cap are refused naming the limit", async () => {
    const whitelist = Array.from({ length: 10_000 }, (_, i) =>
      create(FlowFilterSchema, { sourceIp: [`10.250.${i >> 8}.${i & 255}`] }),
    );
    const err = await (async () => {
      for await (const _ of main.client.getFlows({ whitelist })) {
        // nothing
      }
    })().catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain("at most 128");
  }, 30_000);

  test("faults - 4 MiB of empty filters is refused before it is decoded", async () => {
    // 2 bytes per filter: ~2M FlowFilter messages if decoded (~50 µs and ~30 KiB each).
    const body = Buffer.alloc(4 * 1024 * 1024 - 64);
    for (let i = 0; i < body.length; i += 2) body[i] = 0x32;
    const before = peakRss(main.pid());
    const t0 = performance.now();
    const status = await rawGetFlows(main.addr, body);
    const ms = performance.now() - t0;
    const after = peakRss(main.pid());
    console.log(
      `4 MiB of empty filters: ${status.details} in ${ms.toFixed(0)} ms; peak RSS ${(before / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MiB`,
    );
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toStartWith(`too many filters: ${body.length / 2} `);
    expect(after - before).toBeLessThan(64 * 2 ** 20);
  }, 30_000);

  test("faults - cancelled follow streams are counted as canceled", async () => {
    const method = { method: "GetFlows" };
    const okBefore = await main.metric("periscope_observer_requests_total", {
      ...method,
      code: "ok",
    });
    const cancBefore = await main.metric("periscope_observer_requests_total", {
      ...method,
      code: "canceled",
    });
    const open = await main.metric("periscope_observer_active_streams");
    const clients = Array.from({ length: 20 }, () => {
      const c = new grpc.Client(main.addr, grpc.credentials.createInsecure());
      const call = c.makeServerStreamRequest(
        "/observer.Observer/GetFlows",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0x18, 0x01]), // follow: true
      );
      call.on("error", () => undefined);
      return { c, call };
    });
    await waitFor(
      async () => (await main.metric("periscope_observer_active_streams")) >= open + 20,
      {
        what: "20 follow streams open",
      },
    );
    for (const { call } of clients) call.cancel();
    await waitFor(
      async () =>
        (await main.metric("periscope_observer_requests_total", { ...method, code: "canceled" })) >=
        cancBefore + 20,
      { what: "20 canceled streams counted" },
    );
    for (const { c } of clients) c.close();
    expect(await main.metric("periscope_observer_requests_total", { ...method, code: "ok" })).toBe(
      okBefore,
    );
    expect(await main.metric("periscope_observer_active_streams")).toBe(open);
  }, 30_000);

  test("faults - a 10k-filter request does not starve /healthz or other requests", async () => {
    const heavy = await startObserverProc("faults-heavy", {
      PERISCOPE_MAX_FILTERS: "20000",
      PERISCOPE_HISTORY_SINCE: "0", // only the flows below, not the earlier tests' history
    });
    // ~50 ms per flow under 10k filters: a few seconds of work in one request.
    const flows = 100;
    await publishFlows(
      "node-h",
      Array.from({ length: flows }, (_, k) => `10.33.0.${k}`),
    );
    await waitFor(async () => (await heavy.metric("periscope_observer_ring_entries")) >= flows, {
      what: "flows ingested",
    });
    // Label selectors: the ring's column prefilter cannot decide them, so every flow meets
    // every filter (IP filters would be rejected from the columns without decoding).
    const whitelist = Array.from({ length: 10_000 }, (_, i) =>
      create(FlowFilterSchema, { sourceLabel: [`k8s:app=nomatch-${i}`, `tier in (x${i}, y${i})`] }),
    );
    const t0 = performance.now();
    let heavyDoneAt = Number.POSITIVE_INFINITY;
    const heavyRun = (async () => {
      let n = 0;
      for await (const _ of heavy.client.getFlows({ whitelist })) n++;
      heavyDoneAt = performance.now();
      return n;
    })();
    await waitFor(async () => (await heavy.metric("periscope_observer_active_streams")) >= 1, {
      what: "heavy request running",
    });
    const small = (async () => {
      const s0 = performance.now();
      const got = [];
      for await (const r of heavy.client.getFlows({ number: 5n })) got.push(r);
      return { n: got.length, ms: performance.now() - s0, at: performance.now() };
    })();
    const health: number[] = [];
    let answeredBeforeEnd = 0;
    while (heavyDoneAt === Number.POSITIVE_INFINITY && performance.now() - t0 < 120_000) {
      const h0 = performance.now();
      const r = await fetch(`http://127.0.0.1:${heavy.ops}/healthz`);
      const h1 = performance.now();
      expect(r.status).toBe(200);
      health.push(h1 - h0);
      if (h1 < heavyDoneAt) answeredBeforeEnd++;
      await new Promise((done) => setTimeout(done, 50)); // probe pacing, not a wait
    }
    const matched = await heavyRun;
    const smallRes = await small;
    const heavyMs = heavyDoneAt - t0;
    health.sort((a, b) => a - b);
    console.log(
      `10k filters × ${flows} flows: ${heavyMs.toFixed(0)} ms; /healthz during it: ${health.length} probes, ` +
        `median ${health[health.length >> 1]?.toFixed(1)} ms, max ${health.at(-1)?.toFixed(1)} ms; ` +
        `GetFlows(number=5) beside it: ${smallRes.ms.toFixed(0)} ms`,
    );
    expect(matched).toBe(0);
    expect(smallRes.n).toBe(5);
    expect(smallRes.at).toBeLessThan(heavyDoneAt);
    expect(answeredBeforeEnd).toBeGreaterThanOrEqual(3);
  }, 150_000);

  test("faults - garbage on the flows subject is counted and logged rate-limited without stacks", async () => {
    const kind = { kind: "malformed_batch" };
    const before = await main.metric("periscope_observer_errors_total", kind);
    const garbage = [
      [0xff, 0xff, 0xff, 0x01], // wire type 7
      [0x12, 0x02, 0x0a, 0x05], // a source whose field runs past its end
      [0x0a, 0x09, 0x01], // an event longer than the batch
    ];
    for (let i = 0; i < 300; i++) {
      nc.publish(subjects.flows("node-g"), Uint8Array.from(garbage[i % garbage.length] ?? []));
    }
    await nc.flush();
    await waitFor(
      async () => (await main.metric("periscope_observer_errors_total", kind)) === before + 300,
      { what: "300 malformed batches counted" },
    );
    await publishFlows("node-g", ["10.32.0.1"]);
    const logged = main.lines().filter((l) => l.includes("malformed FlowBatch"));
    expect(logged.length).toBeGreaterThanOrEqual(1);
    expect(logged.length).toBeLessThanOrEqual(2);
    expect(main.lines().join("\n")).not.toContain('"stack"');
    expect(await main.metric("periscope_observer_errors_total", { kind: "ingest" })).toBe(0);
    expect(logged[0]).toContain('"subject":"periscope.flows.node-g"');
    expect(logged[0]).toContain('"reason":"');
    // On a graceful stop the pending count is written as one summary line.
    await sup.stopOne(main.name);
    const summary = main
      .lines()
      .find((l) => /dropped \d+ malformed FlowBatches in the last/.test(l));
    expect(summary).toBeDefined();
  }, 30_000);
});
