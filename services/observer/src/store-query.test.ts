import { describe, expect, test } from "bun:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { StoredEvent } from "./event.ts";
import { FlowStore } from "./store.ts";
import { queryStore, SORT_WINDOW, type StoreQuery } from "./store-query.ts";
import { testFlowEvent } from "./testing.ts";

const T0 = 1_700_000_000_000;
const PER_MESSAGE = 100;

/**
 * A store fed `messages` stream messages of {@link PER_MESSAGE} flows (flow k at T0 + k
 * ms, source 10.x.y.z from k), of which the ring keeps the newest `ring`; the stream
 * holds messages from `streamFrom` on. Within each stream message the flows are in
 * reverse time order (as batches from several nodes may be); the ring got them in time
 * order, as the sort buffer puts them.
 */
function setUp(messages: number, ring: number, streamFrom = 1) {
  const store = new FlowStore({ maxFlows: ring });
  const stream: StoredEvent[][] = [];
  const event = (k: number, seq: number): StoredEvent => {
    const ev = testFlowEvent({ timeMs: T0 + k, src: `10.${k >> 16}.${(k >> 8) & 255}.${k & 255}` });
    ev.streamSeq = seq;
    return ev;
  };
  for (let m = 1; m <= messages; m++) {
    const ks = Array.from({ length: PER_MESSAGE }, (_, i) => (m - 1) * PER_MESSAGE + i).reverse();
    stream.push(ks.map((k) => event(k, m)));
    for (const k of [...ks].reverse()) store.add(event(k, m));
  }
  let reads = 0;
  store.attachHistory({
    fromSeq: 1,
    fromNs: BigInt(T0 - 60_000) * 1_000_000n,
    async *read(startMs, endSeq) {
      reads++;
      for (let m = Math.max(1, streamFrom); m <= endSeq; m++) {
        const events = stream[m - 1] ?? [];
        if (Number((events[0]?.ns ?? 0n) / 1_000_000n) >= startMs - PER_MESSAGE) yield events;
      }
    },
  });
  return { store, reads: () => reads };
}

async function times(store: FlowStore, q: Partial<StoreQuery>): Promise<number[]> {
  const out: number[] = [];
  const query: StoreQuery = { number: 0n, first: false, follow: false, ...q };
  for await (const step of queryStore(store, query, () => true)) {
    if (step.kind === "event") out.push(Number(step.event.ns / 1_000_000n) - T0);
  }
  return out;
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from }, (_, i) => from + i);

describe("store query", () => {
  test("store query - a long stretch from the stream comes out in order, each flow once", async () => {
    const messages = Math.ceil((3 * SORT_WINDOW) / PER_MESSAGE);
    const { store, reads } = setUp(messages, 1000);
    const got = await times(store, { since: timestampFromMs(T0) });
    expect(reads()).toBe(1);
    expect(got).toEqual(range(0, messages * PER_MESSAGE));
  }, 60_000);

  test("store query - the ring alone answers a since it covers", async () => {
    const { store, reads } = setUp(50, 1000);
    const got = await times(store, { since: timestampFromMs(T0 + 4000 + 50) });
    expect(reads()).toBe(0);
    expect(got).toEqual(range(4050, 5000));
  });

  test("store query - number counts across the stream and the ring", async () => {
    const { store } = setUp(50, 1000);
    expect(await times(store, { since: timestampFromMs(T0 + 3990), number: 30n })).toEqual(
      range(3990, 4020),
    );
    // The first N by stored position (as in the ring), sent in time order: the first
    // stream message holds flows 99 down to 0.
    expect(await times(store, { since: timestampFromMs(T0 + 10), number: 5n })).toEqual(
      range(95, 100),
    );
  });

  test("store query - messages the stream no longer holds are absent, nothing else", async () => {
    const { store } = setUp(50, 1000, 31);
    expect(await times(store, { since: timestampFromMs(T0) })).toEqual(range(3000, 5000));
  });
});
