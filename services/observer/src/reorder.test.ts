import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { GetFlowsResponseSchema } from "@periscope/proto";
import { StoredEvent } from "./event.ts";
import { ReorderBuffer } from "./reorder.ts";

const event = (ms: number, nodeName: string): StoredEvent =>
  StoredEvent.fromResponse(create(GetFlowsResponseSchema, { time: timestampFromMs(ms), nodeName }));
const at = (ms: number): StoredEvent => event(ms, `t${ms}`);

function setup(delayMs: number, maxPending?: number) {
  let now = 1000;
  const out: string[] = [];
  const buf = new ReorderBuffer(
    { add: (r) => out.push(r.nodeName) },
    { delayMs, now: () => now, ...(maxPending ? { maxPending } : {}) },
  );
  const advance = (ms: number): void => {
    now += ms;
  };
  return { buf, out, advance };
}

describe("reorder buffer", () => {
  test("reorder - events from several sources leave in time order after the delay", () => {
    const { buf, out, advance } = setup(100);
    for (const ms of [30, 10, 20]) buf.add(at(ms), "n");
    expect(buf.drain()).toBe(0);
    expect(out).toEqual([]);
    advance(100);
    expect(buf.drain()).toBe(3);
    expect(out).toEqual(["t10", "t20", "t30"]);
    buf.flush();
  });

  test("reorder - a late event is still stored, never dropped", () => {
    const { buf, out, advance } = setup(100);
    buf.add(at(50), "n");
    advance(150);
    buf.drain();
    buf.add(at(40), "n");
    buf.flush();
    expect(out).toEqual(["t50", "t40"]);
  });

  test("reorder - equal times keep arrival order; a full buffer releases the earliest", () => {
    const { buf, out } = setup(1000, 2);
    buf.add(event(5, "a"), "n");
    buf.add(event(5, "b"), "n");
    buf.add(at(1), "n");
    expect(out).toEqual(["t1"]);
    buf.flush();
    expect(out).toEqual(["t1", "a", "b"]);
  });

  test("reorder - delay 0 passes events straight through", () => {
    const { buf, out } = setup(0);
    buf.add(at(2), "n");
    buf.add(at(1), "n");
    expect(out).toEqual(["t2", "t1"]);
  });
});
