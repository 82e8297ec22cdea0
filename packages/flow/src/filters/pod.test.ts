import { describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { EndpointSchema, type Flow, FlowSchema } from "@periscope/proto";
import { FilterError } from "./errors.ts";
import { filterByPodNames, parsePodPattern } from "./pod.ts";

type EndpointInit = MessageInitShape<typeof EndpointSchema>;
const flowFrom = (source: EndpointInit): Flow =>
  create(FlowSchema, { source: create(EndpointSchema, source) });

describe("pod filter", () => {
  const parsed: [string, string, string][] = [
    ["xwing", "default", "xwing"],
    ["kube-system/", "kube-system", ""],
    ["kube-system/core", "kube-system", "core"],
    ["/xwing", "", "xwing"],
    ["/", "", ""],
  ];
  test.each(parsed)("pod filter - parses %p", (value, ns, prefix) => {
    expect(parsePodPattern("source_pod", value)).toEqual({ ns, prefix });
  });

  const xwing = { namespace: "default", podName: "xwing-1" };
  const tie = { namespace: "empire", podName: "tiefighter" };
  const xwingElsewhere = { namespace: "rebels", podName: "xwing-2" };
  const world = { labels: ["reserved:world"] };
  const podOnly = { podName: "xwing-3" };
  const cases: [string, string[], EndpointInit, boolean][] = [
    ["bare name means namespace default", ["xwing"], xwing, true],
    ["bare name misses other namespaces", ["xwing"], xwingElsewhere, false],
    ["bare name misses endpoints without namespace", ["xwing"], podOnly, false],
    ["leading slash: prefix in any namespace", ["/xwing"], xwingElsewhere, true],
    ["leading slash: prefix in default too", ["/xwing"], xwing, true],
    ["leading slash: prefix must match", ["/xwing"], tie, false],
    ["leading slash: endpoint without namespace", ["/xwing"], podOnly, true],
    ["namespace slash: every pod in it", ["empire/"], tie, true],
    ["namespace slash: other namespace", ["empire/"], xwing, false],
    ["namespace and prefix", ["empire/tie"], tie, true],
    ["namespace and wrong prefix", ["empire/x"], tie, false],
    ["slash alone: any pod", ["/"], tie, true],
    ["slash alone: any namespace", ["/"], xwingElsewhere, true],
    ["slash alone: never an endpoint without pod or namespace", ["/"], world, false],
    ["values are ORed", ["empire/", "xwing"], xwing, true],
  ];
  test.each(cases)("pod filter - %s", (_name, values, ep, want) => {
    const pred = filterByPodNames("source_pod", values, (f) => f.source);
    expect(pred(flowFrom(ep))).toBe(want);
  });

  test.each(["", "a/b/c", "//"])("pod filter - rejects %p", (value) => {
    expect(() => parsePodPattern("destination_pod", value)).toThrow(FilterError);
    expect(() => parsePodPattern("destination_pod", value)).toThrow(/destination_pod/);
  });
});
