import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  FlowFilterSchema,
  FlowSchema,
  GetFlowsRequestSchema,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
} from "@periscope/proto";
import { ResumePoint } from "./resume.ts";

const T = 1_700_000_000_000;
const flowAt = (ms: number, uuid: string): GetFlowsResponse =>
  create(GetFlowsResponseSchema, {
    time: timestampFromMs(ms),
    responseTypes: { case: "flow", value: create(FlowSchema, { uuid, time: timestampFromMs(ms) }) },
  });

describe("observe resume point", () => {
  test("resume - skips what was printed before, keeps what is new at the same time", () => {
    const r = new ResumePoint(T);
    for (const f of [flowAt(T + 1, "a"), flowAt(T + 2, "b"), flowAt(T + 2, "c")]) {
      expect(r.seen(f)).toBe(false);
      r.note(f);
    }
    r.request(create(GetFlowsRequestSchema, { follow: true }));
    expect([
      r.seen(flowAt(T + 1, "a")),
      r.seen(flowAt(T + 2, "b")),
      r.seen(flowAt(T + 2, "c")),
      r.seen(flowAt(T + 2, "d")),
      r.seen(flowAt(T + 3, "e")),
    ]).toEqual([true, true, true, false, false]);
  });

  test("resume - within one stream nothing is skipped, even out of time order", () => {
    const r = new ResumePoint(T);
    r.note(flowAt(T + 5, "lost-later"));
    expect(r.seen(flowAt(T + 2, "earlier"))).toBe(false);
    r.note(flowAt(T + 2, "earlier"));
    r.request(create(GetFlowsRequestSchema, { follow: true }));
    expect([r.seen(flowAt(T + 2, "earlier")), r.seen(flowAt(T + 6, "new"))]).toEqual([true, false]);
  });

  test("resume - the continuing request follows since the last time with the same filters", () => {
    const original = create(GetFlowsRequestSchema, {
      number: 20n,
      follow: true,
      whitelist: [create(FlowFilterSchema, { sourcePod: ["demo/"] })],
    });
    const r = new ResumePoint(T);
    expect(r.request(original).since).toEqual(timestampFromMs(T));
    r.note(flowAt(T + 1500, "x"));
    const next = r.request(original);
    expect(next.number).toBe(0n);
    expect(next.follow).toBe(true);
    expect(next.since).toEqual(timestampFromMs(T + 1500));
    expect(next.whitelist).toEqual(original.whitelist);
  });
});
