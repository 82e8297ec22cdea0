import { expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { FlowSchema, GetFlowsResponseSchema, NodeState, Verdict } from "@periscope/proto";
import { UsageError } from "./args.ts";
import { FlowPrinter, OUTPUT_FORMATS, type OutputFormat, parseOutputFormat } from "./output.ts";

const flow = create(GetFlowsResponseSchema, {
  time: { seconds: 1_732_243_801n, nanos: 0 },
  nodeName: "node-1",
  responseTypes: {
    case: "flow",
    value: create(FlowSchema, {
      time: { seconds: 1_732_243_801n, nanos: 0 },
      verdict: Verdict.DROPPED,
      IP: { source: "10.0.0.1", destination: "10.0.0.2", ipVersion: 1 },
      eventType: { type: 4, subType: 10 },
      Summary: "UDP",
    }),
  },
});

const status = (state: NodeState) =>
  create(GetFlowsResponseSchema, {
    nodeName: "observer",
    responseTypes: { case: "nodeStatus", value: { stateChange: state, nodeNames: ["n1"] } },
  });

function print(format: OutputFormat, resps: readonly (typeof flow)[], debug = false) {
  const out: string[] = [];
  const err: string[] = [];
  const p = new FlowPrinter(
    format,
    { printNodeName: false, debug },
    (l) => out.push(l),
    (l) => err.push(l),
  );
  for (const r of resps) p.write(r);
  p.close();
  return { out: out.join("\n"), err: err.join("\n") };
}

test("output - dict puts the separator between blocks, not after the last", () => {
  const { out } = print("dict", [flow, flow]);
  expect(out.split("\n").filter((l) => l === "------------")).toHaveLength(1);
  expect(out).toContain("DESTINATION: 10.0.0.2\n       TYPE: from-network\n    VERDICT: DROPPED");
  expect(out.endsWith("SUMMARY: UDP")).toBe(true);
});

test("output - json and jsonpb print the whole GetFlowsResponse", () => {
  for (const f of ["json", "jsonpb"] as const) {
    const line = JSON.parse(print(f, [flow]).out) as { flow?: unknown; node_name?: string };
    expect(line.flow).toBeDefined();
    expect(line.node_name).toBe("node-1");
  }
});

test("output - legacy json prints the bare flow", () => {
  const out: string[] = [];
  const p = new FlowPrinter(
    "json",
    { printNodeName: false, legacyJson: true },
    (l) => out.push(l),
    () => {},
  );
  p.write(flow);
  expect(JSON.parse(out[0] ?? "")).toMatchObject({ verdict: "DROPPED", Summary: "UDP" });
});

test("output - table prints header and aligned rows at the end; nothing for no rows", () => {
  expect(print("table", [flow]).out.split("\n")).toEqual([
    "TIMESTAMP             SOURCE     DESTINATION   TYPE           VERDICT   SUMMARY",
    "Nov 22 02:50:01.000   10.0.0.1   10.0.0.2      from-network   DROPPED   UDP",
  ]);
  expect(print("table", []).out).toBe("");
});

test.each([
  [NodeState.NODE_CONNECTED, false, ""],
  [NodeState.NODE_CONNECTED, true, "N/A [observer]: Receiving flows from 1 nodes: n1"],
  [NodeState.NODE_UNAVAILABLE, false, "N/A [observer]: 1 nodes are unavailable: n1"],
])(
  "output - node status %p (debug %p) goes to stderr only as hubble prints it",
  (state, debug, want) => {
    const { out, err } = print("compact", [status(state)], debug);
    expect(out).toBe("");
    expect(err).toBe(want);
  },
);

test.each(OUTPUT_FORMATS.map((f) => [f]))("output - -o %s prints something for a flow", (f) => {
  expect(print(f, [flow]).out).not.toBe("");
});

test("output - tab and JSON are hubble's aliases; an unknown -o value names the choices", () => {
  expect(parseOutputFormat("tab")).toBe("table");
  expect(parseOutputFormat("JSON")).toBe("json");
  expect(() => parseOutputFormat("yaml")).toThrow(UsageError);
  expect(() => parseOutputFormat("yaml")).toThrow(/compact, dict, json, jsonpb, table/);
});
