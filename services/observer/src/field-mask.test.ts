import { describe, expect, test } from "bun:test";
import { create, equals, toBinary } from "@bufbuild/protobuf";
import { FieldMaskSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Flow, FlowSchema, Verdict } from "@periscope/proto";
import { compileFieldMask, FieldMaskError } from "./field-mask.ts";

function sample(): Flow {
  return create(FlowSchema, {
    time: timestampFromMs(1_700_000_000_123),
    uuid: "u-1",
    verdict: Verdict.FORWARDED,
    IP: { source: "10.0.0.1", destination: "10.0.0.2", ipVersion: 1 },
    l4: {
      protocol: {
        case: "TCP",
        value: { sourcePort: 40000, destinationPort: 80, flags: { SYN: true } },
      },
    },
    source: { namespace: "ns-a", podName: "pod-a", labels: ["app=a", "tier=web"], identity: 7 },
    destination: { namespace: "ns-b", podName: "pod-b" },
    destinationNames: ["example.test"],
    nodeName: "node-1",
    egressAllowedBy: [{ name: "allow-web", namespace: "ns-a" }],
  });
}

function masked(...paths: string[]): Flow {
  const fn = compileFieldMask(create(FieldMaskSchema, { paths }));
  if (fn === undefined) throw new Error("mask compiled to nothing");
  return fn(sample());
}

describe("compileFieldMask", () => {
  test("no mask or an empty one keeps flows unchanged", () => {
    expect(compileFieldMask(undefined)).toBeUndefined();
    expect(compileFieldMask(create(FieldMaskSchema))).toBeUndefined();
  });

  const cases: {
    name: string;
    paths: string[];
    want: Parameters<typeof create<typeof FlowSchema>>[1];
  }[] = [
    { name: "one scalar", paths: ["uuid"], want: { uuid: "u-1" } },
    { name: "timestamp", paths: ["time"], want: { time: timestampFromMs(1_700_000_000_123) } },
    { name: "nested field", paths: ["source.pod_name"], want: { source: { podName: "pod-a" } } },
    {
      name: "nested fields of two endpoints",
      paths: ["source.pod_name", "destination.namespace", "IP.source"],
      want: {
        source: { podName: "pod-a" },
        destination: { namespace: "ns-b" },
        IP: { source: "10.0.0.1" },
      },
    },
    {
      name: "whole submessage",
      paths: ["IP"],
      want: { IP: { source: "10.0.0.1", destination: "10.0.0.2", ipVersion: 1 } },
    },
    {
      name: "whole submessage wins over its sub-path, either order",
      paths: ["source.pod_name", "source", "destination", "destination.pod_name"],
      want: { source: sample().source, destination: sample().destination },
    },
    {
      name: "oneof member set",
      paths: ["l4.TCP"],
      want: { l4: { protocol: sample().l4?.protocol } },
    },
    {
      name: "field inside a oneof member",
      paths: ["l4.TCP.destination_port"],
      want: { l4: { protocol: { case: "TCP", value: { destinationPort: 80 } } } },
    },
    { name: "oneof member not set", paths: ["l4.UDP"], want: { l4: {} } },
    { name: "unset submessage stays unset", paths: ["l7.dns", "tunnel"], want: {} },
    {
      name: "repeated scalars",
      paths: ["destination_names"],
      want: { destinationNames: ["example.test"] },
    },
    {
      name: "repeated inside submessage",
      paths: ["source.labels"],
      want: { source: { labels: ["app=a", "tier=web"] } },
    },
    {
      name: "repeated messages",
      paths: ["egress_allowed_by"],
      want: { egressAllowedBy: [{ name: "allow-web", namespace: "ns-a" }] },
    },
    { name: "enum", paths: ["verdict"], want: { verdict: Verdict.FORWARDED } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = masked(...c.paths);
      expect(equals(FlowSchema, got, create(FlowSchema, c.want))).toBe(true);
    });
  }

  test("the input flow is not changed", () => {
    const flow = sample();
    const before = toBinary(FlowSchema, flow);
    compileFieldMask(create(FieldMaskSchema, { paths: ["source.pod_name", "l4.TCP.flags"] }))?.(
      flow,
    );
    expect(toBinary(FlowSchema, flow)).toEqual(before);
  });

  const bad = [
    "nope",
    "source.nope",
    "",
    "source.",
    ".source",
    "sourcePodName",
    "source.podName", // JSON name, not the proto name
    "uuid.x", // through a scalar
    "source.labels.x", // through a repeated scalar
    "egress_allowed_by.name", // through a repeated message
    "l4.tcp", // case matters
  ];
  for (const path of bad) {
    test(`rejects ${JSON.stringify(path)}`, () => {
      let err: unknown;
      try {
        compileFieldMask(create(FieldMaskSchema, { paths: ["time", path] }));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FieldMaskError);
      expect((err as FieldMaskError).path).toBe(path);
      expect((err as Error).message).toContain(`"${path}"`);
    });
  }
});
