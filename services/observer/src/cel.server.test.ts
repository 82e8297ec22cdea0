import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { Verdict } from "@periscope/proto";
import type { RunningObserver } from "./server.ts";
import {
  type GrpcGetFlows,
  type GrpcMsg as Msg,
  readGrpcStream as readAll,
  type ServedFlows,
  serveFlows,
} from "./testing/flows-server.ts";
import { testFlowResponse } from "./testing.ts";

const celFilter = (...exprs: string[]) => ({ experimental: { cel_expression: exprs } });
const sources = (msgs: Msg[]): string[] =>
  msgs.map((m) => ((m.flow as Msg).IP as Msg).source as string);

let served: ServedFlows;
let observer: RunningObserver;
let client: GrpcGetFlows;

beforeAll(async () => {
  const now = Date.now();
  served = await serveFlows("observer-cel-test", "node-c", [
    testFlowResponse({ timeMs: now, src: "10.6.0.1", srcNamespace: "demo", srcPod: "web-1" }),
    testFlowResponse({
      timeMs: now + 1,
      src: "10.6.0.2",
      srcNamespace: "prod",
      srcPod: "db-0",
      verdict: Verdict.DROPPED,
    }),
    testFlowResponse({ timeMs: now + 2, src: "10.6.0.3", srcNamespace: "demo", srcPod: "api-2" }),
  ]);
  ({ observer, client } = served);
});

afterAll(async () => {
  await served?.stop();
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
