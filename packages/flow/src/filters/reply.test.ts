import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { FlowFilterSchema, FlowSchema, Verdict } from "@periscope/proto";
import { replyFilter } from "./reply.ts";

describe("reply filter", () => {
  const cases: [string, boolean[], Verdict, boolean | undefined, boolean][] = [
    ["known false", [false], Verdict.FORWARDED, false, true],
    ["known true", [true], Verdict.FORWARDED, true, true],
    ["known true, want false", [false], Verdict.FORWARDED, true, false],
    ["unknown forwarded never matches false", [false], Verdict.FORWARDED, undefined, false],
    ["unknown forwarded never matches true", [true], Verdict.FORWARDED, undefined, false],
    ["unknown dropped counts as false", [false], Verdict.DROPPED, undefined, true],
    ["unknown dropped is not a reply", [true], Verdict.DROPPED, undefined, false],
    ["known true dropped", [true], Verdict.DROPPED, true, true],
    ["either value, unknown dropped", [true, false], Verdict.DROPPED, undefined, true],
  ];
  test.each(cases)("reply filter - %s", (_name, reply, verdict, isReply, want) => {
    const [pred] = replyFilter.build(create(FlowFilterSchema, { reply }));
    const flow = create(FlowSchema, isReply === undefined ? { verdict } : { verdict, isReply });
    expect(pred?.(flow)).toBe(want);
  });
});
