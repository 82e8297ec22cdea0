import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Bus, connectBus, FLOWS_STREAM, subjects } from "@periscope/bus";
import { FlowBatchSchema, FlowSchema, GetFlowsResponseSchema } from "@periscope/proto";
import { createLogger, createMetrics } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { type Ingest, startIngest } from "./ingest.ts";
import { createObserverMetrics } from "./metrics.ts";
import { FlowStore } from "./store.ts";

const log = createLogger("observer", "silent");
const NODE = "node-i";

/** A FlowBatch decoded from frame `seq` of boot-i/0, holding `flows` flows. */
function batch(seq: bigint, flows: number, recordsBefore: bigint): Uint8Array {
  const responses = Array.from({ length: flows }, (_, i) =>
    create(GetFlowsResponseSchema, {
      nodeName: NODE,
      time: timestampFromMs(1_700_000_000_000 + Number(seq) * 10 + i),
      responseTypes: {
        case: "flow",
        value: create(FlowSchema, {
          nodeName: NODE,
          time: timestampFromMs(1_700_000_000_000 + Number(seq) * 10 + i),
        }),
      },
    }),
  );
  return toBinary(
    FlowBatchSchema,
    create(FlowBatchSchema, {
      responses,
      source: { bootId: "boot-i", partition: 0, seq, recordsBefore, records: BigInt(flows) },
    }),
  );
}

/** Flows and lost records in the store. */
function counts(store: FlowStore): { flows: number; lost: number } {
  let flows = 0;
  let lost = 0;
  for (let i = store.ring.oldest; i < store.ring.next; i++) {
    const ev = store.ring.at(i);
    if (ev?.kind === "flow") flows++;
    const r = ev?.kind === "lostEvents" ? ev.resp.responseTypes : undefined;
    if (r?.case === "lostEvents") lost += Number(r.value.numEventsLost);
  }
  return { flows, lost };
}

describe("ingest", () => {
  let nats: LocalNats;
  let bus: Bus;
  beforeAll(async () => {
    nats = await startLocalNats({});
    bus = await connectBus({ url: nats.url, name: "ingest-test", log });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  const open = (store: FlowStore, durable: string): Promise<Ingest> =>
    startIngest({
      bus,
      store,
      log,
      metrics: createObserverMetrics(createMetrics("observer")),
      durable,
      gapHoldMs: 200,
    });

  test("ingest - a frame that never arrives becomes a LostEvent with its exact records; duplicates and late frames are dropped", async () => {
    const store = new FlowStore({ maxFlows: 1000 });
    const ingest = await open(store, "observer-gap");
    try {
      const js = bus.js();
      const subject = subjects.flows(NODE);
      await js.publish(subject, batch(1n, 2, 0n));
      await js.publish(subject, batch(1n, 2, 0n)); // redelivered upstream: same frame again
      await js.publish(subject, batch(3n, 4, 2n + 5n)); // frame 2 (5 records) is missing
      await waitFor(() => counts(store).lost === 5, { what: "the missing frame counted" });
      expect(counts(store)).toEqual({ flows: 6, lost: 5 });
      expect(ingest.lost()).toBe(5);
      await js.publish(subject, batch(2n, 5, 2n)); // arrives after it was counted lost
      await js.publish(subject, batch(4n, 1, 11n));
      await waitFor(() => counts(store).flows === 7, { what: "frame 4 stored" });
      expect(counts(store)).toEqual({ flows: 7, lost: 5 });
    } finally {
      await ingest.stop();
    }
  });

  test("ingest - batches the stream removed while the observer was away are detected and counted", async () => {
    const store = new FlowStore({ maxFlows: 1000 });
    const js = bus.js();
    const subject = subjects.flows("node-r");
    const first = await open(store, "observer-resume");
    const jsm = await bus.jsm();
    try {
      const ack = await js.publish(subject, batch(1n, 1, 0n));
      await waitFor(() => counts(store).flows === 1, { what: "first batch" });
      expect(ack.seq).toBeGreaterThan(0);
    } finally {
      await first.stop();
    }
    // While no observer reads: frames 2..5 are stored, then 3 and 4 are removed (as the
    // stream's limits would), unread.
    const seqs: number[] = [];
    for (const [seq, flows, before] of [
      [2n, 2, 1n],
      [3n, 3, 3n],
      [4n, 4, 6n],
      [5n, 1, 10n],
    ] as const) {
      seqs.push((await js.publish(subject, batch(seq, flows, before))).seq);
    }
    await jsm.streams.deleteMessage(FLOWS_STREAM, seqs[1] ?? 0);
    await jsm.streams.deleteMessage(FLOWS_STREAM, seqs[2] ?? 0);
    const again = await open(store, "observer-resume");
    try {
      await waitFor(() => counts(store).lost === 7, { what: "removed frames counted" });
      expect(counts(store)).toEqual({ flows: 4, lost: 7 });
      expect(again.streamGaps()).toBe(2);
    } finally {
      await again.stop();
    }
  });
});
