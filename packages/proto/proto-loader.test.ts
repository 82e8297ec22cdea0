import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { loadSync, type MethodDefinition } from "@grpc/proto-loader";
import { FlowSchema, GetFlowsResponseSchema, Verdict } from "./index.ts";

// Plain gRPC clients load the .proto files at run time with
// @grpc/proto-loader. Only proto/ is needed as include dir: the google/protobuf
// imports resolve from the descriptors protobufjs bundles.

const protoRoot = resolve(import.meta.dir, "../../proto");

function loadObserver() {
  return loadSync("observer/observer.proto", {
    includeDirs: [protoRoot],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
}

function method(name: string): MethodDefinition<object, object> {
  const service = loadObserver()["observer.Observer"];
  if (service === undefined || !(name in service)) throw new Error(`no method ${name}`);
  return (service as Record<string, MethodDefinition<object, object>>)[name] as MethodDefinition<
    object,
    object
  >;
}

test.each([
  ["GetFlows", "/observer.Observer/GetFlows", true],
  ["GetAgentEvents", "/observer.Observer/GetAgentEvents", true],
  ["GetDebugEvents", "/observer.Observer/GetDebugEvents", true],
  ["GetNodes", "/observer.Observer/GetNodes", false],
  ["GetNamespaces", "/observer.Observer/GetNamespaces", false],
  ["ServerStatus", "/observer.Observer/ServerStatus", false],
])("proto-loader - observer.proto loads %s as %s", (name, path, streaming) => {
  const m = method(name);
  expect(m.path).toBe(path);
  expect(m.responseStream).toBe(streaming);
  expect(m.requestStream).toBe(false);
});

test("proto-loader - decodes a GetFlowsResponse encoded by the generated code", () => {
  const bytes = toBinary(
    GetFlowsResponseSchema,
    create(GetFlowsResponseSchema, {
      responseTypes: {
        case: "flow",
        value: create(FlowSchema, {
          verdict: Verdict.FORWARDED,
          source: { podName: "web-0", namespace: "default" },
          l4: { protocol: { case: "TCP", value: { destinationPort: 443, flags: { SYN: true } } } },
          isReply: false,
          Summary: "TCP Flags: SYN",
        }),
      },
      nodeName: "node-a",
      time: create(TimestampSchema, { seconds: 1_700_000_000n }),
    }),
  );

  const decoded = method("GetFlows").responseDeserialize(Buffer.from(bytes));
  expect(decoded).toMatchObject({
    response_types: "flow",
    node_name: "node-a",
    time: { seconds: "1700000000" },
    flow: {
      verdict: "FORWARDED",
      source: { pod_name: "web-0", namespace: "default" },
      l4: { protocol: "TCP", TCP: { destination_port: 443, flags: { SYN: true } } },
      // present but false: an empty BoolValue (defaults are off)
      is_reply: {},
      Summary: "TCP Flags: SYN",
    },
  });
});
