import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { GetFlowsRequestSchema } from "@periscope/proto";
import { createMetrics } from "@periscope/telemetry";
import { StoredEvent } from "./event.ts";
import { createObserverMetrics } from "./metrics.ts";
import { flowAnswers, planGetFlows } from "./observer.ts";
import { FlowStore } from "./store.ts";
import { StreamSlots } from "./stream-slots.ts";
import { testFlowEvent } from "./testing.ts";

/** Protobuf bytes: a varint, a length-delimited field. */
const varint = (n: number): number[] => (n < 0x80 ? [n] : [(n & 0x7f) | 0x80, ...varint(n >>> 7)]);
const len = (field: number, body: number[]): number[] => [
  ...varint((field << 3) | 2),
  ...varint(body.length),
  ...body,
];

/** A stored flow the observer's own reader takes but whose l4.TCP does not decode. */
function undecodableFlow(): StoredEvent {
  const time = len(1, [0x08, ...varint(Math.floor(Date.now() / 1000))]);
  const flow = [...time, ...len(6, len(1, [0x08, 0x80]))];
  return StoredEvent.fromBytes(Uint8Array.from(len(1, flow)));
}

function setup() {
  const store = new FlowStore({ maxFlows: 16 });
  const metrics = createObserverMetrics(createMetrics("observer"));
  store.add(testFlowEvent({ timeMs: Date.now(), src: "10.1.0.1" }));
  store.add(undecodableFlow());
  store.add(testFlowEvent({ timeMs: Date.now(), src: "10.1.0.2" }));
  const deps = { store, nodeName: "o", version: "v", metrics };
  const undecodable = async (): Promise<number> =>
    (await metrics.errors.get()).values.find((v) => v.labels.kind === "undecodable_flow")?.value ??
    0;
  return { deps, undecodable };
}

async function answers(deps: ReturnType<typeof setup>["deps"], init: object): Promise<number> {
  let n = 0;
  const req = create(GetFlowsRequestSchema, init);
  for await (const _ of flowAnswers(deps, req, new AbortController().signal)) n++;
  return n;
}

describe("GetFlows plan", () => {
  test("stream - a flow that does not decode is sent as is without mask or filter", async () => {
    const { deps, undecodable } = setup();
    expect(await answers(deps, {})).toBe(3);
    expect(await undecodable()).toBe(0);
  });

  test("stream - a mask or a filter skips a flow that does not decode and counts it", async () => {
    const { deps, undecodable } = setup();
    expect(await answers(deps, { fieldMask: { paths: ["IP"] } })).toBe(2);
    expect(await undecodable()).toBe(1);
    expect(await answers(deps, { whitelist: [{ sourceIp: ["10.1.0.2"] }] })).toBe(1);
    expect(await undecodable()).toBe(2);
  });

  test("stream - a bad request is refused when planned, before anything is sent", () => {
    const { deps } = setup();
    const bad = create(GetFlowsRequestSchema, { first: true, follow: true });
    expect(() => planGetFlows(deps, bad)).toThrow("first cannot be specified with follow");
    const mask = create(GetFlowsRequestSchema, { fieldMask: { paths: ["nope"] } });
    expect(() => planGetFlows(deps, mask)).toThrow('invalid path "nope"');
  });

  test("stream - slots: at most max, each release once", () => {
    const slots = new StreamSlots(2);
    const a = slots.tryAcquire();
    const b = slots.tryAcquire();
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    expect(slots.tryAcquire()).toBeUndefined();
    a?.();
    a?.();
    expect(slots.active).toBe(1);
    expect(slots.tryAcquire()).toBeDefined();
    expect(slots.tryAcquire()).toBeUndefined();
    expect(slots.refusal().rawMessage).toContain("at most 2 at a time (--max-concurrent-streams)");
    expect(() => new StreamSlots(0)).toThrow(RangeError);
  });
});
