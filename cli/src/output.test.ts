import { expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { FlowSchema, GetFlowsResponseSchema, Verdict } from "@periscope/proto";
import { UsageError } from "./args.ts";
import { createPrinter, OUTPUT_FORMATS, parseOutputFormat } from "./output.ts";

const resp = create(GetFlowsResponseSchema, {
  time: { seconds: 1_732_243_801n, nanos: 0 },
  nodeName: "node-1",
  responseTypes: {
    case: "flow",
    value: create(FlowSchema, {
      verdict: Verdict.DROPPED,
      IP: { source: "10.0.0.1", destination: "10.0.0.2", ipVersion: 1 },
      eventType: { type: 4, subType: 10 },
    }),
  },
});

test("output - -o dict prints the dict block", () => {
  const text = createPrinter(parseOutputFormat("dict"), { printNodeName: false })(resp);
  expect(text).toContain("DESTINATION: 10.0.0.2\n       TYPE: from-network\n    VERDICT: DROPPED");
  expect(text.endsWith("------------")).toBe(true);
});

test.each(OUTPUT_FORMATS.map((f) => [f]))("output - -o %s prints something for a flow", (f) => {
  expect(createPrinter(parseOutputFormat(f), { printNodeName: true })(resp)).not.toBe("");
});

test("output - an unknown -o value is a usage error naming the choices", () => {
  expect(() => parseOutputFormat("yaml")).toThrow(UsageError);
  expect(() => parseOutputFormat("yaml")).toThrow(/compact, json, jsonpb, dict/);
});
