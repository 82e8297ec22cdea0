import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startHeartbeat, subjects } from "@periscope/bus";
import { FlowBatchSchema } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { parseConfig } from "./config.ts";
import { type RunningObserver, startObserver } from "./server.ts";
import { testFlowResponse } from "./testing.ts";

const PROTO_ROOT = join(import.meta.dir, "../../../proto");
const LOAD = {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
};

type Msg = Record<string, unknown>;
interface GrpcObserver extends grpc.Client {
  GetNodes(req: object, cb: (err: grpc.ServiceError | null, res: Msg) => void): void;
}
interface GrpcPeer extends grpc.Client {
  Notify(req: object): grpc.ClientReadableStream<Msg>;
}

let nats: LocalNats;
let nc: NatsConnection;
let observer: RunningObserver;
let obs: GrpcObserver;
let peer: GrpcPeer;

beforeAll(async () => {
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  const config = parseConfig(
    ["--listen-address", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--nats-url", nats.url],
    { PERISCOPE_NODE_NAME: "observer-peer-test", PERISCOPE_MAX_FLOWS: "50" },
  );
  observer = await startObserver(config, { log: createLogger("observer", "silent") });
  const addr = `127.0.0.1:${observer.port}`;
  const creds = grpc.credentials.createInsecure();
  const o = grpc.loadPackageDefinition(protoLoader.loadSync("observer/observer.proto", LOAD));
  const p = grpc.loadPackageDefinition(protoLoader.loadSync("peer/peer.proto", LOAD));
  type Ctor<T> = new (a: string, c: grpc.ChannelCredentials) => T;
  obs = new (o.observer as unknown as { Observer: Ctor<GrpcObserver> }).Observer(addr, creds);
  peer = new (p.peer as unknown as { Peer: Ctor<GrpcPeer> }).Peer(addr, creds);
});

afterAll(async () => {
  obs?.close();
  peer?.close();
  await observer?.stop();
  await nc?.close();
  await nats?.stop();
});

const getNodes = () =>
  new Promise<Msg[]>((resolve, reject) =>
    obs.GetNodes({}, (err, res) => (err ? reject(err) : resolve(res.nodes as Msg[]))),
  );

describe("observer server: nodes and peers", () => {
  test("server - Notify over grpc-js: PEER_ADDED for a beating collector, PEER_DELETED when it stops", async () => {
    const seen: Msg[] = [];
    const stream = peer.Notify({});
    stream.on("data", (m: Msg) => seen.push(m));
    stream.on("error", () => undefined); // the cancel below surfaces as CANCELLED
    const hb = startHeartbeat(nc, {
      service: "collector",
      node: "peer-node-1",
      version: "periscope 7.7.7",
      intervalMs: 200,
    });
    try {
      await waitFor(() => seen.some((m) => m.name === "peer-node-1"), { what: "PEER_ADDED" });
      expect(seen[0]).toMatchObject({ name: "peer-node-1", type: "PEER_ADDED", address: "" });
      expect(seen[0]?.tls).toBeNull();

      const batch = create(FlowBatchSchema, {
        responses: [1, 2, 3].map((i) =>
          testFlowResponse({ timeMs: Date.now() + i, src: `10.9.0.${i}`, node: "peer-node-1" }),
        ),
      });
      nc.publish(subjects.flows("peer-node-1"), toBinary(FlowBatchSchema, batch));
      await waitFor(() => observer.store.seenFlows >= 3, { what: "3 flows ingested" });
      const nodes = await getNodes();
      expect(nodes).toHaveLength(1);
      expect(nodes[0]).toMatchObject({
        name: "peer-node-1",
        version: "periscope 7.7.7",
        address: "",
        state: "NODE_CONNECTED",
        tls: { enabled: false, server_name: "" },
        num_flows: "3",
        max_flows: "50",
        seen_flows: "3",
      });
      expect(Number(nodes[0]?.uptime_ns)).toBeGreaterThan(0);
    } finally {
      await hb.stop();
    }
    await waitFor(() => seen.length >= 2, { what: "PEER_DELETED" });
    expect(seen[1]).toMatchObject({ name: "peer-node-1", type: "PEER_DELETED" });
    stream.cancel();
  });
});
