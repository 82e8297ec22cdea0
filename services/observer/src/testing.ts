import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import {
  EndpointSchema,
  FlowSchema,
  type GetFlowsResponse,
  GetFlowsResponseSchema,
  IPSchema,
  IPVersion,
  Verdict,
} from "@periscope/proto";
import { StoredEvent } from "./event.ts";

/** What a test flow may vary. */
export interface TestFlowInit {
  /** Wall-clock ms of the flow. */
  timeMs: number;
  src?: string;
  dst?: string;
  node?: string;
  verdict?: Verdict;
  srcNamespace?: string;
  srcPod?: string;
  dstNamespace?: string;
}

/** A GetFlowsResponse carrying a minimal IPv4 flow, as the enricher would publish it. */
export function testFlowResponse(init: TestFlowInit): GetFlowsResponse {
  const time = timestampFromMs(init.timeMs);
  const node = init.node ?? "node-a";
  const flow = create(FlowSchema, {
    time,
    nodeName: node,
    verdict: init.verdict ?? Verdict.FORWARDED,
    IP: create(IPSchema, {
      source: init.src ?? "10.0.0.1",
      destination: init.dst ?? "10.0.0.2",
      ipVersion: IPVersion.IPv4,
    }),
    source: create(EndpointSchema, {
      namespace: init.srcNamespace ?? "",
      podName: init.srcPod ?? "",
    }),
    destination: create(EndpointSchema, { namespace: init.dstNamespace ?? "" }),
  });
  return create(GetFlowsResponseSchema, {
    nodeName: node,
    time,
    responseTypes: { case: "flow", value: flow },
  });
}

/** {@link testFlowResponse} as the observer stores it. */
export function testFlowEvent(init: TestFlowInit): StoredEvent {
  return StoredEvent.fromResponse(testFlowResponse(init));
}

/** The source IP of a flow response ("" for anything else); handy in assertions. */
export function sourceIp(resp: GetFlowsResponse): string {
  return resp.responseTypes.case === "flow" ? (resp.responseTypes.value.IP?.source ?? "") : "";
}

/** The project's .proto files, which clients built from Cilium's protos would load too. */
export const PROTO_ROOT = join(import.meta.dir, "../../../proto");

/**
 * A plain @grpc/grpc-js client of `observer.Observer` on 127.0.0.1:`port`, loaded from the
 * project's protos with proto field names, 64-bit integers and enums as strings, and oneofs
 * named (what a grpc-js client built from Cilium's protos sees). `extra` adds loader options
 * (e.g. `defaults: true`).
 */
export function grpcObserverClient<T extends grpc.Client>(
  port: number,
  extra: protoLoader.Options = {},
): T {
  const def = protoLoader.loadSync("observer/observer.proto", {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    oneofs: true,
    ...extra,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    observer: { Observer: new (addr: string, creds: grpc.ChannelCredentials) => T };
  };
  return new pkg.observer.Observer(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}
