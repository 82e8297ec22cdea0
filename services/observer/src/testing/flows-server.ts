/**
 * A real observer over a real nats-server holding known flows, read by a plain
 * grpc-js client: the fixture of the server tests that ask GetFlows the way
 * clients built from Cilium's protos do.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import { FlowBatchSchema, type GetFlowsResponse } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { parseConfig } from "../config.ts";
import { type RunningObserver, startObserver } from "../server.ts";
import { grpcObserverClient } from "../testing.ts";

/** A message as the grpc-js loader hands it out (proto field names). */
export type GrpcMsg = Record<string, unknown>;

/** The part of the grpc-js `observer.Observer` client these tests call. */
export interface GrpcGetFlows extends grpc.Client {
  GetFlows(req: object): grpc.ClientReadableStream<GrpcMsg>;
}

/** Every message of a server stream once it ends; rejects with the stream's error. */
export function readGrpcStream(stream: grpc.ClientReadableStream<GrpcMsg>): Promise<GrpcMsg[]> {
  return new Promise((resolve, reject) => {
    const msgs: GrpcMsg[] = [];
    stream.on("data", (m: GrpcMsg) => msgs.push(m));
    stream.on("end", () => resolve(msgs));
    stream.on("error", reject);
  });
}

/** What {@link serveFlows} started; `stop()` closes it all in reverse order. */
export interface ServedFlows {
  readonly nats: LocalNats;
  readonly nc: NatsConnection;
  readonly observer: RunningObserver;
  readonly client: GrpcGetFlows;
  stop(): Promise<void>;
}

/**
 * Starts nats-server and an observer named `observerNode` (ring of 100 flows, gRPC and
 * ops on free ports), publishes `responses` as one FlowBatch on `flowsNode`'s flows
 * subject and returns once the observer has ingested them all. On failure whatever
 * was started is stopped before the error is rethrown.
 */
export async function serveFlows(
  observerNode: string,
  flowsNode: string,
  responses: GetFlowsResponse[],
): Promise<ServedFlows> {
  let nats: LocalNats | undefined;
  let nc: NatsConnection | undefined;
  let observer: RunningObserver | undefined;
  let client: GrpcGetFlows | undefined;
  const stop = async (): Promise<void> => {
    client?.close();
    await observer?.stop();
    await nc?.close();
    await nats?.stop();
  };
  try {
    nats = await startLocalNats({});
    nc = await connect({ servers: nats.url });
    const config = parseConfig(
      ["--listen-address", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--nats-url", nats.url],
      { PERISCOPE_NODE_NAME: observerNode, PERISCOPE_MAX_FLOWS: "100" },
    );
    const running = await startObserver(config, { log: createLogger("observer", "silent") });
    observer = running;
    client = grpcObserverClient<GrpcGetFlows>(running.port);
    const batch = create(FlowBatchSchema, { responses });
    nc.publish(subjects.flows(flowsNode), toBinary(FlowBatchSchema, batch));
    await nc.flush();
    await waitFor(() => running.store.seenFlows >= responses.length, {
      what: `${responses.length} flows ingested`,
    });
    return { nats, nc, observer: running, client, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
