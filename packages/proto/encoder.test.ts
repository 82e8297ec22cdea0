import { describe, expect, test } from "bun:test";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { AnySchema, StructSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { compileEncoder, EncodeError } from "./encoder.ts";
import { compileFieldEncoder, streamBegin, streamTake } from "./encoder-stream.ts";
import {
  FlowBatchSchema,
  FlowFilterSchema,
  FlowSchema,
  GetFlowsResponseSchema,
  LostEventSource,
  RawFrameSchema,
  TrafficDirection,
  Verdict,
} from "./index.ts";
import { randomMessage, seededRandom } from "./testing/random-message.ts";

const encodeFlow = compileEncoder(FlowSchema);
const T = timestampFromMs(1_700_000_000_123);

const base: MessageInitShape<typeof FlowSchema> = {
  time: T,
  uuid: "00000000-0000-4000-8000-000000000001",
  verdict: Verdict.FORWARDED,
  nodeName: "node-a",
  IP: { source: "10.0.0.1", destination: "10.0.0.2", ipVersion: 1 },
  ethernet: { source: "02:00:00:00:00:01", destination: "02:00:00:00:00:02" },
  source: {
    ID: 12,
    identity: 4096,
    namespace: "default",
    labels: ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=default"],
    podName: "web-0",
    workloads: [{ name: "web", kind: "StatefulSet" }],
  },
  destination: { identity: 2, labels: ["reserved:world"] },
  trafficDirection: TrafficDirection.EGRESS,
  eventType: { type: 4, subType: 3 },
};

/** Hand-built flows covering every field kind Flow uses. */
const FLOWS: [string, MessageInitShape<typeof FlowSchema>][] = [
  ["empty", {}],
  [
    "TCP with flags",
    {
      ...base,
      l4: {
        protocol: {
          case: "TCP",
          value: { sourcePort: 44000, destinationPort: 443, flags: { SYN: true, ACK: true } },
        },
      },
    },
  ],
  [
    "UDP",
    {
      ...base,
      l4: { protocol: { case: "UDP", value: { sourcePort: 53, destinationPort: 40000 } } },
    },
  ],
  ["ICMPv4", { ...base, l4: { protocol: { case: "ICMPv4", value: { type: 8 } } } }],
  ["ICMPv6", { ...base, l4: { protocol: { case: "ICMPv6", value: { type: 128, code: 0 } } } }],
  [
    "SCTP",
    {
      ...base,
      l4: {
        protocol: { case: "SCTP", value: { sourcePort: 1, destinationPort: 2, chunkType: 1 } },
      },
    },
  ],
  [
    "VRRP",
    { ...base, l4: { protocol: { case: "VRRP", value: { type: 1, vrid: 7, priority: 100 } } } },
  ],
  [
    "IGMP",
    {
      ...base,
      l4: { protocol: { case: "IGMP", value: { type: 0x16, groupAddress: "239.1.1.1" } } },
    },
  ],
  ["oneof case with zero message", { l4: { protocol: { case: "UDP", value: {} } } }],
  ["is_reply true", { ...base, isReply: true }],
  ["is_reply false", { ...base, isReply: false }],
  ["is_reply unset", { ...base, isReply: undefined }],
  [
    "DNS",
    {
      ...base,
      l7: {
        type: 2,
        latencyNs: 1234n,
        record: {
          case: "dns",
          value: {
            query: "example.com.",
            ips: ["1.2.3.4", "::1"],
            ttl: 300,
            cnames: ["a."],
            rcode: 3,
            qtypes: ["A"],
            rrtypes: ["A", "AAAA"],
          },
        },
      },
    },
  ],
  [
    "HTTP",
    {
      ...base,
      l7: {
        type: 1,
        record: {
          case: "http",
          value: {
            code: 200,
            method: "GET",
            url: "http://x/ä",
            protocol: "HTTP/1.1",
            headers: [
              { key: "a", value: "b" },
              { key: "", value: "" },
            ],
          },
        },
      },
    },
  ],
  [
    "policies",
    {
      ...base,
      egressAllowedBy: [{ name: "p", namespace: "ns", labels: ["x"], revision: 9n, kind: "CNP" }],
      ingressDeniedBy: [{}],
      policyLog: ["a", ""],
    },
  ],
  [
    "names and summary",
    {
      ...base,
      sourceNames: ["a.example", "b.example"],
      destinationNames: ["😀.example"],
      nodeLabels: ["zone=a"],
      Summary: "TCP Flags: SYN".repeat(20),
    },
  ],
  [
    "64-bit and wrappers",
    {
      ...base,
      socketCookie: 2n ** 64n - 1n,
      cgroupId: 1n,
      dropReason: 0,
      proxyPort: 65535,
      interface: { index: 7, name: "eth0" },
    },
  ],
  [
    "Any extension",
    {
      ...base,
      extensions: create(AnySchema, {
        typeUrl: "type.googleapis.com/x.Y",
        value: Uint8Array.of(8, 1),
      }),
    },
  ],
  [
    "lone surrogates and huge string",
    { uuid: "\ud800-\udfff-😀-\ud83d", nodeName: "n".repeat(70_000) },
  ],
  [
    "negative int32 and unknown enum",
    {
      verdict: 99 as Verdict,
      dropReason: 4_294_967_295,
      l4: { protocol: { case: "ICMPv4", value: { type: 255, code: 255 } } },
    },
  ],
];

describe("encoder", () => {
  test.each(FLOWS)("encoder - Flow %s matches toBinary", (_name, init) => {
    const flow = create(FlowSchema, init);
    const want = toBinary(FlowSchema, flow);
    expect(encodeFlow(flow)).toEqual(want);
  });

  test("encoder - Flow with unknown fields appends them like toBinary", () => {
    const flow = create(FlowSchema, { ...base });
    flow.$unknown = [{ no: 999_999, wireType: 0, data: Uint8Array.of(5) }];
    const bytes = encodeFlow(flow);
    expect(bytes).toEqual(toBinary(FlowSchema, flow));
    expect(fromBinary(FlowSchema, bytes).$unknown).toEqual(flow.$unknown);
  });

  test("encoder - FlowBatch of flows and lost events matches toBinary", () => {
    const encode = compileEncoder(FlowBatchSchema);
    // Lone surrogates do not survive decoding, so that flow stays out of the round trip.
    const responses = FLOWS.filter(([name]) => !name.includes("surrogate")).map(([, init]) =>
      create(GetFlowsResponseSchema, {
        nodeName: "node-a",
        time: T,
        responseTypes: { case: "flow", value: init },
      }),
    );
    responses.push(
      create(GetFlowsResponseSchema, {
        nodeName: "node-a",
        time: T,
        responseTypes: {
          case: "lostEvents",
          value: {
            source: LostEventSource.PERF_EVENT_RING_BUFFER,
            numEventsLost: 17n,
            cpu: 0,
            first: T,
            last: T,
          },
        },
      }),
      create(GetFlowsResponseSchema, {
        responseTypes: { case: "lostEvents", value: { numEventsLost: 1n, cpu: -1 } },
      }),
    );
    const batch = create(FlowBatchSchema, { responses });
    const bytes = encode(batch);
    expect(bytes).toEqual(toBinary(FlowBatchSchema, batch));
    expect(fromBinary(FlowBatchSchema, bytes)).toEqual(batch);
    expect(encode(create(FlowBatchSchema))).toEqual(new Uint8Array(0));
  });

  const SCHEMAS: [string, DescMessage][] = [
    ["Flow", FlowSchema],
    ["GetFlowsResponse", GetFlowsResponseSchema],
    ["FlowFilter", FlowFilterSchema],
    ["RawFrame", RawFrameSchema],
  ];

  test.each(SCHEMAS)(
    "encoder - random %s messages match toBinary and round-trip",
    (_name, schema) => {
      const encode = compileEncoder(schema);
      const rnd = seededRandom(0x5eed ^ schema.typeName.length);
      for (let i = 0; i < 300; i++) {
        const withSurrogates = randomMessage(schema, rnd, {
          maxDepth: 4,
          loneSurrogates: true,
          unknownFields: true,
        });
        const msg = withSurrogates as MessageShape<DescMessage>;
        expect(encode(msg)).toEqual(toBinary(schema, msg));
        const clean = randomMessage(schema, rnd, {
          maxDepth: 4,
          loneSurrogates: false,
          unknownFields: true,
        });
        const bytes = encode(clean as MessageShape<DescMessage>);
        expect(bytes).toEqual(toBinary(schema, clean as MessageShape<DescMessage>));
        expect(fromBinary(schema, bytes)).toEqual(clean as MessageShape<DescMessage>);
      }
    },
  );

  test("encoder - maps and recursive messages (google.protobuf.Struct) match toBinary", () => {
    const encode = compileEncoder(StructSchema);
    const rnd = seededRandom(7);
    for (let i = 0; i < 100; i++) {
      const msg = randomMessage(StructSchema, rnd, {
        maxDepth: 3,
        loneSurrogates: false,
        unknownFields: false,
      });
      expect(encode(msg as MessageShape<typeof StructSchema>)).toEqual(
        toBinary(StructSchema, msg as MessageShape<typeof StructSchema>),
      );
    }
  });

  test("encoder - missing implicit fields are written as zero values like toBinary", () => {
    const flow = create(FlowSchema, { ...base, IP: { source: "a", ipVersion: 1 } });
    const ip = flow.IP as unknown as Record<string, unknown>;
    delete ip.destination;
    delete ip.encrypted;
    delete ip.ipVersion;
    const endpoint = flow.source as unknown as Record<string, unknown>;
    delete endpoint.identity;
    delete endpoint.podName;
    const bytes = encodeFlow(flow);
    expect(bytes).toEqual(toBinary(FlowSchema, flow));
    // Explicit zero values are omitted, so the missing ones must have added bytes.
    const zeroed = create(FlowSchema, { ...base, IP: { source: "a" } });
    if (zeroed.source !== undefined) Object.assign(zeroed.source, { identity: 0, podName: "" });
    expect(bytes.length).toBeGreaterThan(encodeFlow(zeroed).length);
  });

  test("encoder - values toBinary rejects are rejected with EncodeError", () => {
    const flow = create(FlowSchema, { proxyPort: -1 });
    expect(() => toBinary(FlowSchema, flow)).toThrow();
    expect(() => encodeFlow(flow)).toThrow(EncodeError);
  });

  test("encoder - a message larger than the scratch buffer encodes whole", () => {
    const encode = compileEncoder(FlowBatchSchema);
    const flow = create(FlowSchema, { ...base, Summary: "x".repeat(1000) });
    const batch = create(FlowBatchSchema, {
      responses: Array.from({ length: 200 }, () =>
        create(GetFlowsResponseSchema, { responseTypes: { case: "flow", value: flow } }),
      ),
    });
    const bytes = encode(batch);
    expect(bytes.length).toBeGreaterThan(200_000);
    expect(bytes).toEqual(toBinary(FlowBatchSchema, batch));
  });

  test("encoder - a message encoded while a streamed one is open is whole, and the open one is untouched", () => {
    const flow = create(FlowSchema, { ...base, Summary: "streamed" });
    const other = create(FlowSchema, { ...base, Summary: "y".repeat(3000) });
    const inner = create(AnySchema, { typeUrl: "type.googleapis.com/x", value: encodeFlow(other) });
    const encodeAny = compileEncoder(AnySchema);
    const writeResponse = compileFieldEncoder(1, GetFlowsResponseSchema);
    const writeFlowField = (f: typeof flow) =>
      writeResponse(create(GetFlowsResponseSchema, { responseTypes: { case: "flow", value: f } }));
    streamBegin();
    writeFlowField(flow);
    // Mid-stream (as the flow join builds an extension): apart, and apart inside apart.
    const nested: Uint8Array[] = [];
    const encodeOuter = compileEncoder(FlowSchema);
    nested.push(encodeAny(inner));
    nested.push(
      encodeOuter(
        create(FlowSchema, {
          ...base,
          extensions: create(AnySchema, { typeUrl: "t", value: encodeFlow(other) }),
        }),
      ),
    );
    writeFlowField(flow);
    const streamed = streamTake();
    expect(nested[0]).toEqual(toBinary(AnySchema, inner));
    expect(fromBinary(FlowSchema, nested[1] as Uint8Array).extensions?.value).toEqual(
      toBinary(FlowSchema, other),
    );
    const response = create(GetFlowsResponseSchema, {
      responseTypes: { case: "flow", value: flow },
    });
    expect(streamed).toEqual(
      toBinary(FlowBatchSchema, create(FlowBatchSchema, { responses: [response, response] })),
    );
    // Nothing stays open: a plain encode after it is whole too.
    expect(encodeFlow(other)).toEqual(toBinary(FlowSchema, other));
  });
});
