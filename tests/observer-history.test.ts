/**
 * Observer history across restarts: a real nats-server, observers run as
 * `bun services/observer/src/main.ts`, FlowBatches published on the real flows subject.
 * Flows stored before an observer is killed (SIGKILL) are served after its restart, a
 * second observer started later serves the same history, and a stream that lost its
 * oldest batches serves only what it still holds.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join, resolve } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { FLOWS_STREAM, subjects } from "@periscope/bus";
import { freePort, type LocalNats, Supervisor, startLocalNats, waitFor } from "@periscope/devstack";
import {
  FlowBatchSchema,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
  LostEventSchema,
  LostEventSource,
  Observer,
} from "@periscope/proto";
import { sourceIp, testFlowResponse } from "../services/observer/src/testing.ts";
import { sumMetric } from "./harness.ts";

const ROOT = resolve(import.meta.dir, "..");
const NODE = "hist-node";
const PER_BATCH = 40;
/** Flow times start a minute back, one ms apart, in publishing order. */
const T0 = Date.now() - 60_000;

interface ObserverProc {
  readonly name: string;
  readonly client: ReturnType<typeof createClient<typeof Observer>>;
  metric(name: string): Promise<number>;
  lines(): string[];
  /** From spawning the process to /readyz answering, ms. */
  readonly readyMs: number;
}

let nats: LocalNats;
let nc: NatsConnection;
let js: JetStreamClient;
const sup = new Supervisor({ sink: () => undefined, stopTimeoutMs: 8000, keepLines: 2000 });

async function startObserverProc(name: string): Promise<ObserverProc> {
  const addr = `127.0.0.1:${await freePort()}`;
  const ops = await freePort();
  const t0 = performance.now();
  sup.start(name, ["bun", "run", join(ROOT, "services/observer/src/main.ts")], {
    env: {
      PERISCOPE_NATS_URL: nats.url,
      PERISCOPE_NODE_NAME: name,
      PERISCOPE_LISTEN_ADDR: addr,
      PERISCOPE_OPS_ADDR: `127.0.0.1:${ops}`,
      PERISCOPE_MAX_FLOWS: "100000",
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
    readyMs: performance.now() - t0,
    client: createClient(Observer, createGrpcTransport({ baseUrl: `http://${addr}` })),
    metric: async (m) =>
      sumMetric(await (await fetch(`http://127.0.0.1:${ops}/metrics`)).text(), m, {}),
    lines: () => sup.get(name)?.lines() ?? [],
  };
}

/** What was published, in stream order: its stream sequence and the flows' source IPs. */
const published: { seq: number; srcs: string[] }[] = [];
let frameSeq = 0n;
let recordsBefore = 0n;
let timeIndex = 0;

/** Publishes `count` batches of {@link PER_BATCH} flows with unique sources. */
async function publishBatches(count: number): Promise<void> {
  for (let b = 0; b < count; b++) {
    const n = published.length;
    const srcs = Array.from({ length: PER_BATCH }, (_, i) => `10.${40 + (n >> 8)}.${n & 255}.${i}`);
    frameSeq++;
    const batch = create(FlowBatchSchema, {
      responses: srcs.map((src) => testFlowResponse({ timeMs: T0 + timeIndex++, src, node: NODE })),
      source: {
        bootId: "boot-h",
        partition: 0,
        seq: frameSeq,
        recordsBefore,
        records: BigInt(PER_BATCH),
      },
    });
    recordsBefore += BigInt(PER_BATCH);
    const ack = await js.publish(subjects.flows(NODE), toBinary(FlowBatchSchema, batch));
    published.push({ seq: ack.seq, srcs });
  }
}

/** Publishes a batch holding one LostEvent (7 records lost in the datapath). */
async function publishLost(): Promise<void> {
  const resp = create(GetFlowsResponseSchema, {
    nodeName: NODE,
    time: timestampFromMs(T0 + timeIndex++),
    responseTypes: {
      case: "lostEvents",
      value: create(LostEventSchema, {
        source: LostEventSource.PERF_EVENT_RING_BUFFER,
        numEventsLost: 7n,
      }),
    },
  });
  const batch = create(FlowBatchSchema, { responses: [resp] });
  const ack = await js.publish(subjects.flows(NODE), toBinary(FlowBatchSchema, batch));
  published.push({ seq: ack.seq, srcs: [] });
}

/** Everything the observer holds, oldest first. */
async function allEvents(o: ObserverProc): Promise<GetFlowsResponse[]> {
  const got: GetFlowsResponse[] = [];
  for await (const r of o.client.getFlows({ number: 1_000_000n })) got.push(r);
  return got;
}

/** Source IPs of the flows, lost events as "lost:<n>", and whether times never go back. */
function summary(events: GetFlowsResponse[]): { keys: string[]; ordered: boolean } {
  let last = 0n;
  let ordered = true;
  const keys = events.map((r) => {
    const t = BigInt(r.time?.seconds ?? 0n) * 1_000_000_000n + BigInt(r.time?.nanos ?? 0);
    if (t < last) ordered = false;
    last = t;
    return r.responseTypes.case === "lostEvents"
      ? `lost:${r.responseTypes.value.numEventsLost}`
      : sourceIp(r);
  });
  return { keys, ordered };
}

/** What an observer must serve for the published batches from stream sequence `fromSeq` on. */
function expectedKeys(fromSeq = 0): string[] {
  return published
    .filter((p) => p.seq >= fromSeq)
    .flatMap((p) => (p.srcs.length === 0 ? ["lost:7"] : p.srcs));
}

/** `periscope_observer_*` "history replayed" log line → flows/s of the replay. */
function replayRate(o: ObserverProc, flows: number): { ms: number; batches: number; rate: number } {
  const line = o.lines().find((l) => l.includes("history replayed"));
  if (line === undefined) throw new Error(`no replay line in:\n${o.lines().join("\n")}`);
  const rec = JSON.parse(line.slice(line.indexOf("{"))) as { ms: number; batches: number };
  return { ms: rec.ms, batches: rec.batches, rate: (flows / Math.max(1, rec.ms)) * 1000 };
}

let first: ObserverProc;

beforeAll(async () => {
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  js = jetstream(nc);
  first = await startObserverProc("hist-a"); // creates the flows stream
}, 60_000);

afterAll(async () => {
  await sup.stop();
  await nc?.close();
  await nats?.stop();
});

describe("observer history", () => {
  test("history - flows seen before a kill -9 are served after the restart, in order, once each", async () => {
    await publishBatches(50);
    await publishLost();
    await publishBatches(50);
    const seenLive = expectedKeys();
    await waitFor(
      async () => (await first.metric("periscope_observer_ring_entries")) === 100 * PER_BATCH + 1,
      {
        what: "100 batches and a lost event ingested live",
      },
    );
    const before = summary(await allEvents(first));
    expect(before.keys).toEqual(seenLive);

    const proc = sup.get("hist-a");
    proc?.kill("SIGKILL");
    expect(await proc?.exited).not.toBe(0);
    // Stored while no observer runs: the durable holds them, the replay covers them.
    await publishBatches(50);

    first = await startObserverProc("hist-a");
    const after = summary(await allEvents(first));
    expect(after.ordered).toBe(true);
    expect(after.keys).toEqual(expectedKeys());
    expect(new Set(after.keys).size).toBe(after.keys.length);
    const status = await first.client.serverStatus({});
    expect(status.numFlows).toBe(BigInt(150 * PER_BATCH + 1));
    expect(status.seenFlows).toBe(BigInt(150 * PER_BATCH));
    const replay = replayRate(first, 150 * PER_BATCH);
    expect(replay.batches).toBe(151);
    console.log(
      `replay: ${150 * PER_BATCH} flows in ${replay.batches} batches, ${replay.ms} ms ` +
        `(${Math.round(replay.rate)} flows/s); restart to ready ${Math.round(first.readyMs)} ms`,
    );

    // Live batches after the hand-over arrive once, after the history.
    await publishBatches(1);
    await waitFor(
      async () => (await first.metric("periscope_observer_ring_entries")) === 151 * PER_BATCH + 1,
      {
        what: "the live batch",
      },
    );
    const live = summary(await allEvents(first));
    expect(live.keys).toEqual(expectedKeys());
    expect(live.ordered).toBe(true);
  }, 60_000);

  test("history - a second observer started later serves the same history", async () => {
    const second = await startObserverProc("hist-b");
    const fromSecond = summary(await allEvents(second));
    const fromFirst = summary(await allEvents(first));
    expect(fromSecond.keys).toEqual(expectedKeys());
    expect(fromSecond.keys).toEqual(fromFirst.keys);
    expect(fromSecond.ordered).toBe(true);
    expect((await second.client.serverStatus({})).seenFlows).toBe(BigInt(151 * PER_BATCH));
  }, 60_000);

  test("history - batches the stream no longer holds are not served", async () => {
    const jsm = await jetstreamManager(nc);
    // As the stream's age or size limits would: only the newest 40 batches remain.
    await jsm.streams.purge(FLOWS_STREAM, { keep: 40 });
    const kept = published.at(-40)?.seq ?? 0;
    const third = await startObserverProc("hist-c");
    const got = summary(await allEvents(third));
    expect(got.keys).toEqual(expectedKeys(kept));
    expect(got.keys.length).toBe(40 * PER_BATCH);
    expect(got.keys.some((k) => k.startsWith("lost:"))).toBe(false);
    expect((await third.client.serverStatus({})).seenFlows).toBe(BigInt(40 * PER_BATCH));
    // The observers that saw them keep them.
    expect(summary(await allEvents(first)).keys).toEqual(expectedKeys());
  }, 60_000);

  test("history - batches published while an observer replays are stored once, none missing", async () => {
    const kept = published.at(-40)?.seq ?? 0;
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        await publishBatches(1);
        await Bun.sleep(20); // publishing pace (≈ 5 k flows/s), not a wait for a condition
      }
    })();
    let fourth: ObserverProc;
    try {
      fourth = await startObserverProc("hist-d");
      // Keep publishing across the hand-over from the replay to the durable.
      const atReady = published.length;
      await waitFor(() => published.length >= atReady + 20, { what: "batches after ready" });
    } finally {
      publishing = false;
      await publisher;
    }
    const want = expectedKeys(kept);
    await waitFor(
      async () => (await fourth.metric("periscope_observer_ring_entries")) >= want.length,
      {
        what: "every published batch stored",
      },
    );
    const got = summary(await allEvents(fourth));
    expect(got.keys).toEqual(want);
    expect(got.ordered).toBe(true);
  }, 60_000);
});
