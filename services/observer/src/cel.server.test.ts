import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import { FlowBatchSchema, Verdict } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { parseConfig } from "./config.ts";
import { type RunningObserver, startObserver } from "./server.ts";
import { grpcObserverClient, testFlowResponse } from "./testing.ts";

type Msg = Record<string, unknown>;

interface GrpcObserver extends grpc.Client {
  GetFlows(req: object): grpc.ClientReadableStream<Msg>;
}

function readAll(stream: grpc.ClientReadableStream<Msg>): Promise<Msg[]> {
  return new Promise((resolve, reject) => {
    const msgs: Msg[] = [];
    stream.on("data", (m: Msg) => msgs.push(m));
    stream.on("end", () => resolve(msgs));
    stream.on("error", reject);
  });
}

const celFilter = (...exprs: string[]) => ({ experimental: { cel_expression: exprs } });
const sources = (msgs: Msg[]): string[] =>
  msgs.map((m) => ((m.flow as Msg).IP as Msg).source as string);

let nats: LocalNats;
let nc: NatsConnection;
let observer: RunningObserver;
let client: GrpcObserver;

beforeAll(async () => {
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  const config = parseConfig(
    ["--listen-address", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--nats-url", nats.url],
    { PERISCOPE_NODE_NAME: "observer-cel-test", PERISCOPE_MAX_FLOWS: "100" },
  );
  observer = await startObserver(config, { log: createLogger("observer", "silent") });
  client = grpcObserverClient<GrpcObserver>(observer.port);
  const now = Date.now();
  const batch = create(FlowBatchSchema, {
    responses: [
      testFlowResponse({ timeMs: now, src: "10.6.0.1", srcNamespace: "demo", srcPod: "web-1" }),
      testFlowResponse({
        timeMs: now + 1,
        src: "10.6.0.2",
        srcNamespace: "prod",
        srcPod: "db-0",
        verdict: Verdict.DROPPED,
      }),
      testFlowResponse({ timeMs: now + 2, src: "10.6.0.3", srcNamespace: "demo", srcPod: "api-2" }),
    ],
  });
  nc.publish(subjects.flows("node-c"), toBinary(FlowBatchSchema, batch));
  await nc.flush();
  await waitFor(() => observer.store.seenFlows >= 3, { what: "3 flows ingested" });
});

afterAll(async () => {
  client?.close();
  await observer?.stop();
  await nc?.close();
  await nats?.stop();
});

describe("GetFlows experimental.cel_expression over a real server", () => {
  test("cel - whitelist and blacklist expressions from a grpc-js client", async () => {
    const dropped = await readAll(
      client.GetFlows({ whitelist: [celFilter("_flow.verdict == Verdict.DROPPED")] }),
    );
    expect(sources(dropped)).toEqual(["10.6.0.2"]);
    const demoWeb = await readAll(
      client.GetFlows({
        whitelist: [
          celFilter('_flow.source.pod_name.startsWith("api-")', '_flow.IP.source == "10.6.0.1"'),
        ],
        blacklist: [celFilter('_flow.source.namespace != "demo"')],
      }),
    );
    expect(sources(demoWeb)).toEqual(["10.6.0.1", "10.6.0.3"]);
  });

  test("cel - a bad expression is INVALID_ARGUMENT naming experimental.cel_expression", async () => {
    for (const [expr, problem] of [
      ["_flow.verdict", "must return bool"],
      ["_flow.no_such_field == 1", "undefined field 'no_such_field'"],
      ["_flow.verdict ==", "_flow.verdict =="],
    ] as const) {
      const err = await readAll(client.GetFlows({ whitelist: [celFilter(expr)] })).catch(
        (e: grpc.ServiceError) => e,
      );
      expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((err as grpc.ServiceError).details).toContain("experimental.cel_expression");
      expect((err as grpc.ServiceError).details).toContain(problem);
    }
  });

  test("cel - an evaluation error is no match and counted in errors_total", async () => {
    const before =
      (await observer.metrics.errors.get()).values.find((v) => v.labels.kind === "cel_evaluation")
        ?.value ?? 0;
    // Index 0 of an empty label list fails on every flow; the second expression still decides.
    const msgs = await readAll(
      client.GetFlows({
        whitelist: [celFilter('_flow.source.labels[0] == "x"', '_flow.source.namespace == "prod"')],
      }),
    );
    expect(sources(msgs)).toEqual(["10.6.0.2"]);
    const after = (await observer.metrics.errors.get()).values.find(
      (v) => v.labels.kind === "cel_evaluation",
    )?.value;
    expect(after).toBe(before + 3);
  });
});
