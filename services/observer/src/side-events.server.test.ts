import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import {
  AgentEventSchema,
  AgentEventType,
  DebugEventSchema,
  DebugEventType,
  EndpointUpdateNotificationSchema,
  FlowBatchSchema,
  FrameSourceSchema,
  GetAgentEventsResponseSchema,
  GetDebugEventsResponseSchema,
} from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { parseConfig } from "./config.ts";
import { type RunningObserver, startObserver } from "./server.ts";
import { grpcObserverClient } from "./testing.ts";

type Msg = Record<string, unknown>;
interface GrpcObserver extends grpc.Client {
  GetAgentEvents(req: object): grpc.ClientReadableStream<Msg>;
  GetDebugEvents(req: object): grpc.ClientReadableStream<Msg>;
}

const T0 = 1_700_000_000_000;
let nats: LocalNats;
let nc: NatsConnection;
let observer: RunningObserver | undefined;
let client: GrpcObserver | undefined;

function agentEvent(i: number) {
  return toBinary(
    GetAgentEventsResponseSchema,
    create(GetAgentEventsResponseSchema, {
      nodeName: "node-a",
      time: timestampFromMs(T0 + i * 1000),
      agentEvent: create(AgentEventSchema, {
        type: AgentEventType.ENDPOINT_CREATED,
        notification: {
          case: "endpointUpdate",
          value: create(EndpointUpdateNotificationSchema, {
            id: BigInt(i),
            labels: [`interface=veth${i}`],
          }),
        },
      }),
    }),
  );
}

async function start(): Promise<void> {
  const config = parseConfig(["--listen-address", "127.0.0.1:0", "--nats-url", nats.url], {
    PERISCOPE_NODE_NAME: "obs",
  });
  observer = await startObserver(config, { log: createLogger("observer", "silent"), noOps: true });
  client = grpcObserverClient<GrpcObserver>(observer.port);
}

function c(): GrpcObserver {
  if (client === undefined) throw new Error("observer not started");
  return client;
}

async function stop(): Promise<void> {
  client?.close();
  await observer?.stop();
}

/** Messages of a stream until it ends, or the first `n` of a follow stream (then cancelled). */
function collect(stream: grpc.ClientReadableStream<Msg>, n = Number.POSITIVE_INFINITY) {
  return new Promise<Msg[]>((resolve, reject) => {
    const msgs: Msg[] = [];
    stream.on("data", (m: Msg) => {
      msgs.push(m);
      if (msgs.length === n) {
        stream.cancel();
        resolve(msgs);
      }
    });
    stream.on("end", () => resolve(msgs));
    stream.on("error", (err: grpc.ServiceError) => (err.code === 1 ? resolve(msgs) : reject(err)));
  });
}

const ids = (msgs: Msg[]) =>
  msgs.map((m) => (m.agent_event as { endpoint_update: { id: string } }).endpoint_update.id);

beforeAll(async () => {
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await stop();
  await nc?.close();
  await nats?.stop();
});

describe("observer agent and debug events (real nats-server, grpc-js client)", () => {
  test("observer - GetAgentEvents serves the stream's history after a restart, and follows", async () => {
    await start();
    const js = jetstream(nc);
    for (let i = 1; i <= 5; i++) await js.publish(subjects.agent("node-a"), agentEvent(i));
    await waitFor(async () => (await collect(c().GetAgentEvents({}))).length === 5, {
      what: "5 agent events served",
    });
    // A new observer reads the history from PERISCOPE_EVENTS.
    await stop();
    await start();
    await waitFor(async () => (await collect(c().GetAgentEvents({}))).length === 5, {
      what: "history after restart",
    });
    expect(ids(await collect(c().GetAgentEvents({ number: 2 })))).toEqual(["4", "5"]);
    expect(ids(await collect(c().GetAgentEvents({ number: 2, first: true })))).toEqual(["1", "2"]);
    const window = await collect(
      c().GetAgentEvents({
        since: { seconds: String((T0 + 2000) / 1000) },
        until: { seconds: String((T0 + 3000) / 1000) },
      }),
    );
    expect(ids(window)).toEqual(["2", "3"]);
    const first = await collect(c().GetAgentEvents({}));
    expect(first[0]).toMatchObject({
      node_name: "node-a",
      agent_event: { type: "ENDPOINT_CREATED", endpoint_update: { labels: ["interface=veth1"] } },
    });

    // Events at or after `since` whether already stored or published later: no race.
    const follow = collect(
      c().GetAgentEvents({
        follow: true,
        since: { seconds: String((T0 + 5000) / 1000), nanos: 500_000_000 },
      }),
      1,
    );
    await js.publish(subjects.agent("node-a"), agentEvent(6));
    expect(ids(await follow)).toEqual(["6"]);
  }, 30_000);

  test("observer - GetDebugEvents serves the debug events of flow batches", async () => {
    const debug = (i: number) =>
      create(GetDebugEventsResponseSchema, {
        nodeName: "node-a",
        time: timestampFromMs(T0 + i),
        debugEvent: create(DebugEventSchema, {
          type: DebugEventType.DBG_CT_CREATED,
          hash: 0xabc,
          arg1: i,
          cpu: 1,
          message: `event ${i}`,
        }),
      });
    const batch = create(FlowBatchSchema, {
      debugEvents: [debug(1), debug(2)],
      source: create(FrameSourceSchema, {
        bootId: "boot-d",
        partition: 0,
        seq: 1n,
        recordsBefore: 0n,
        records: 2n,
      }),
    });
    await jetstream(nc).publish(subjects.flows("node-a"), toBinary(FlowBatchSchema, batch));
    let got: Msg[] = [];
    await waitFor(
      async () => {
        got = await collect(c().GetDebugEvents({}));
        return got.length === 2;
      },
      { what: "2 debug events served" },
    );
    expect(got[1]).toMatchObject({
      node_name: "node-a",
      debug_event: {
        type: "DBG_CT_CREATED",
        hash: { value: 0xabc },
        arg1: { value: 2 },
        message: "event 2",
      },
    });
    expect(
      await collect(c().GetDebugEvents({ first: true, follow: true })).catch((e) => e.details),
    ).toBe("first cannot be specified with follow");
  }, 30_000);
});
