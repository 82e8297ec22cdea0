import { describe, expect, test } from "bun:test";
import { create, type DescMessage, toBinary } from "@bufbuild/protobuf";
import { BytesValueSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import {
  EndpointSchema,
  FlowSchema,
  GetFlowsResponseSchema,
  Layer4Schema,
  RawFrameSchema,
  TCPFlagsSchema,
} from "@periscope/proto";
import { messageFactory } from "./message.ts";

const SCHEMAS: readonly [string, DescMessage][] = [
  ["flow.Flow", FlowSchema],
  ["flow.Endpoint", EndpointSchema],
  ["flow.Layer4", Layer4Schema],
  ["flow.TCPFlags", TCPFlagsSchema],
  ["observer.GetFlowsResponse", GetFlowsResponseSchema],
  ["google.protobuf.Timestamp", TimestampSchema],
  ["google.protobuf.BytesValue", BytesValueSchema],
  ["periscope.raw.v1.RawFrame", RawFrameSchema],
];

describe("message factory", () => {
  test.each(SCHEMAS)("message factory - %s zero message equals create()", (_, schema) => {
    const made = messageFactory(schema)();
    expect(made).toEqual(create(schema));
    expect(toBinary(schema, made)).toEqual(toBinary(schema, create(schema)));
  });

  test.each(SCHEMAS)("message factory - %s copies share no mutable parts", (_, schema) => {
    const next = messageFactory(schema);
    const a: Record<string, unknown> = next();
    const b: Record<string, unknown> = next();
    for (const [key, value] of Object.entries(a)) {
      if (typeof value === "object" && value !== null) expect(b[key]).not.toBe(value);
    }
  });

  test("message factory - filled flow encodes like one built by create()", () => {
    const flow = messageFactory(FlowSchema)();
    flow.nodeName = "n1";
    flow.sourceNames.push("a.example");
    flow.l4 = create(Layer4Schema, { protocol: { case: "UDP", value: { sourcePort: 53 } } });
    flow.isReply = false;
    const reference = create(FlowSchema, {
      nodeName: "n1",
      sourceNames: ["a.example"],
      l4: { protocol: { case: "UDP", value: { sourcePort: 53 } } },
      isReply: false,
    });
    expect(toBinary(FlowSchema, flow)).toEqual(toBinary(FlowSchema, reference));
    expect(messageFactory(FlowSchema)().sourceNames).toEqual([]);
  });
});
