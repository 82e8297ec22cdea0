import { describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FlowFilterSchema, FlowSchema } from "@periscope/proto";
import { eventTypeFilter } from "./event-type.ts";

type EventTypeInit = NonNullable<MessageInitShape<typeof FlowFilterSchema>["eventType"]>;

describe("event_type filter", () => {
  const trace = { type: 4, subType: 11 };
  const drop = { type: 1, subType: 133 };
  const cases: [string, EventTypeInit, { type: number; subType: number } | undefined, boolean][] = [
    ["same type", [{ type: 4 }], trace, true],
    ["other type", [{ type: 4 }], drop, false],
    ["type 0 is a wildcard", [{ type: 0 }], drop, true],
    [
      "type 0 with a matching sub type",
      [{ type: 0, matchSubType: true, subType: 133 }],
      drop,
      true,
    ],
    ["type 0 with another sub type", [{ type: 0, matchSubType: true, subType: 5 }], drop, false],
    ["sub type ignored without match_sub_type", [{ type: 4, subType: 3 }], trace, true],
    ["sub type must match", [{ type: 4, matchSubType: true, subType: 10 }], trace, false],
    ["sub type 0 matched explicitly", [{ type: 1, matchSubType: true, subType: 0 }], drop, false],
    ["listed types are ORed", [{ type: 4 }, { type: 1 }], drop, true],
    ["a flow without event type", [{ type: 0 }], undefined, false],
  ];
  test.each(cases)("event_type filter - %s", (_name, eventType, flowType, want) => {
    const [pred] = eventTypeFilter.build(create(FlowFilterSchema, { eventType }));
    expect(pred).toBeDefined();
    const flow = create(FlowSchema, flowType ? { eventType: flowType } : {});
    expect(pred?.(flow)).toBe(want);
  });
});
