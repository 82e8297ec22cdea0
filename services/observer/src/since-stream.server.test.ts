/**
 * GetFlows with a `since` older than the ring, over a real nats-server and a real
 * observer: a ring of 1000 flows after 5000 were published answers from the flows stream
 * first, then from the ring, in order, each flow once; a follow stream goes on live; a
 * stream that lost its oldest batches serves what it still holds and nothing made up.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { FLOWS_STREAM, subjects } from "@periscope/bus";
import { FlowBatchSchema, type GetFlowsRequestSchema, Observer } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { parseConfig } from "./config.ts";
import { type RunningObserver, startObserver } from "./server.ts";
import { sourceIp, testFlowResponse } from "./testing.ts";

const NODE = "since-node";
const BATCHES = 100;
const PER_BATCH = 50;
const RING = 1000;
/** Flow times: a minute back, one ms apart, in publishing order. */
const T0 = Date.now() - 60_000;

let nats: LocalNats;
let nc: NatsConnection;
let js: JetStreamClient;
let observer: RunningObserver;
let client: ReturnType<typeof createClient<typeof Observer>>;
/** Source IPs per published batch, in publishing order. */
const published: string[][] = [];

function batchBytes(b: number): Uint8Array {
  const srcs = Array.from({ length: PER_BATCH }, (_, i) => `10.${b >> 8}.${b & 255}.${i + 1}`);
  published[b] = srcs;
  return toBinary(
    FlowBatchSchema,
    create(FlowBatchSchema, {
      responses: srcs.map((src, i) =>
        testFlowResponse({ timeMs: T0 + b * PER_BATCH + i, src, node: NODE }),
      ),
      source: {
        bootId: "boot-s",
        partition: 0,
        seq: BigInt(b + 1),
        recordsBefore: BigInt(b * PER_BATCH),
        records: BigInt(PER_BATCH),
      },
    }),
  );
}

async function publish(b: number): Promise<void> {
  await js.publish(subjects.flows(NODE), batchBytes(b));
}

/** Source IPs of batches [from, to). */
function expected(from: number, to: number): string[] {
  return published.slice(from, to).flat();
}

async function flows(
  req: MessageInitShape<typeof GetFlowsRequestSchema>,
): Promise<{ keys: string[]; lost: number }> {
  const keys: string[] = [];
  let lost = 0;
  for await (const r of client.getFlows(req)) {
    if (r.responseTypes.case === "lostEvents") lost++;
    else keys.push(sourceIp(r));
  }
  return { keys, lost };
}

beforeAll(async () => {
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  js = jetstream(nc);
  const config = parseConfig(
    ["--listen-address", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--nats-url", nats.url],
    { PERISCOPE_NODE_NAME: "observer-since", PERISCOPE_MAX_FLOWS: String(RING) },
  );
  observer = await startObserver(config, { log: createLogger("observer", "silent") });
  client = createClient(Observer, createGrpcTransport({ baseUrl: observer.url }));
  for (let b = 0; b < BATCHES; b++) {
    await publish(b);
    // A collector that resent a frame: stored twice in the stream, served once.
    if (b === 10) await publish(b);
  }
  await waitFor(() => observer.store.seenFlows >= BATCHES * PER_BATCH, {
    what: "every published flow ingested",
    timeoutMs: 30_000,
  });
}, 60_000);

afterAll(async () => {
  await observer?.stop();
  await nc?.close();
  await nats?.stop();
});

describe("GetFlows since older than the ring", () => {
  test("since-stream - the ring holds the newest 1000, since=early answers all 5000 in order, once each", async () => {
    expect(observer.store.ring.length).toBe(RING);
    const t = performance.now();
    const got = await flows({ since: timestampFromMs(T0 - 1000) });
    console.log(
      `since=early over a ${RING}-flow ring: ${got.keys.length} flows in ${Math.round(performance.now() - t)} ms`,
    );
    expect(got.lost).toBe(0);
    expect(got.keys.length).toBe(BATCHES * PER_BATCH);
    expect(got.keys).toEqual(expected(0, BATCHES));
    // Without since, only the ring.
    expect((await flows({ number: 1_000_000n })).keys).toEqual(expected(BATCHES - 20, BATCHES));
  }, 30_000);

  test("since-stream - since and until inside the stream's part, a filter, a count", async () => {
    const window = await flows({
      since: timestampFromMs(T0 + 10 * PER_BATCH),
      until: timestampFromMs(T0 + 30 * PER_BATCH - 1),
    });
    expect(window.keys).toEqual(expected(10, 30));
    const first = await flows({ since: timestampFromMs(T0 + 7 * PER_BATCH + 3), number: 20n });
    expect(first.keys).toEqual(expected(7, 8).slice(3, 23));
    // Batch 40's flows are 10.0.40.x; the filter applies to both parts alike.
    const filtered = await flows({
      since: timestampFromMs(T0),
      whitelist: [{ sourceIp: ["10.0.40.0/24", "10.0.95.0/24"] }],
    });
    expect(filtered.keys).toEqual([...expected(40, 41), ...expected(95, 96)]);
  }, 30_000);

  test("since-stream - a follow stream answers from the stream, the ring, then live", async () => {
    const ctl = new AbortController();
    const keys: string[] = [];
    const reading = (async () => {
      try {
        for await (const r of client.getFlows(
          { since: timestampFromMs(T0 - 1000), follow: true },
          { signal: ctl.signal },
        )) {
          keys.push(sourceIp(r));
          if (keys.length === (BATCHES + 1) * PER_BATCH) ctl.abort();
        }
      } catch (err) {
        if (!ctl.signal.aborted) throw err;
      }
    })();
    await waitFor(() => keys.length >= BATCHES * PER_BATCH, { what: "history followed" });
    await publish(BATCHES);
    await reading;
    expect(keys).toEqual(expected(0, BATCHES + 1));
  }, 30_000);

  test("since-stream - batches the stream no longer holds are not served, nothing is made up", async () => {
    const jsm = await jetstreamManager(nc);
    // As the stream's age or size limits would: only the newest 30 messages remain
    // (batches 71..100; the ring holds 81..100).
    await jsm.streams.purge(FLOWS_STREAM, { keep: 30 });
    const got = await flows({ since: timestampFromMs(T0 - 1000) });
    expect(got.lost).toBe(0);
    expect(got.keys).toEqual(expected(BATCHES + 1 - 30, BATCHES + 1));
  }, 30_000);
});
