import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import { FlowBatchSchema } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { parseConfig } from "./config.ts";
import { type RunningObserver, startObserver } from "./server.ts";
import { grpcObserverClient, PROTO_ROOT, testFlowResponse } from "./testing.ts";

/** Plain grpc-js view of the Observer service, loaded from our own .proto files. */
interface GrpcObserver extends grpc.Client {
  ServerStatus(
    req: object,
    cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
  ): grpc.ClientUnaryCall;
  GetFlows(req: object): grpc.ClientReadableStream<Record<string, unknown>>;
}

function grpcClient(port: number): GrpcObserver {
  return grpcObserverClient<GrpcObserver>(port, { defaults: true });
}

function readAll(stream: grpc.ClientReadableStream<Record<string, unknown>>) {
  return new Promise<{ msgs: Record<string, unknown>[]; status: grpc.StatusObject }>(
    (resolve, reject) => {
      const msgs: Record<string, unknown>[] = [];
      let status: grpc.StatusObject | undefined;
      let ended = false;
      const finish = () => {
        if (status && ended) resolve({ msgs, status });
      };
      stream.on("data", (m: Record<string, unknown>) => msgs.push(m));
      stream.on("status", (s: grpc.StatusObject) => {
        status = s;
        finish();
      });
      stream.on("end", () => {
        ended = true;
        finish();
      });
      stream.on("error", reject);
    },
  );
}

let nats: LocalNats;
let nc: NatsConnection;
let observer: RunningObserver;
let client: GrpcObserver;

async function publishFlows(node: string, srcs: string[]): Promise<void> {
  const batch = create(FlowBatchSchema, {
    responses: srcs.map((src, i) => testFlowResponse({ timeMs: Date.now() + i, src, node })),
  });
  nc.publish(subjects.flows(node), toBinary(FlowBatchSchema, batch));
  await nc.flush();
}

beforeAll(async () => {
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  const config = parseConfig(
    ["--listen-address", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--nats-url", nats.url],
    { PERISCOPE_NODE_NAME: "observer-test", PERISCOPE_MAX_FLOWS: "100" },
  );
  observer = await startObserver(config, { log: createLogger("observer", "silent") });
  client = grpcClient(observer.port);
});

afterAll(async () => {
  client?.close();
  await observer?.stop();
  await nc?.close();
  await nats?.stop();
});

interface GrpcHealth extends grpc.Client {
  Check(
    req: { service: string },
    cb: (err: grpc.ServiceError | null, res: { status: string }) => void,
  ): void;
}

function healthCheck(service: string) {
  const def = protoLoader.loadSync("grpc/health/v1/health.proto", {
    includeDirs: [PROTO_ROOT],
    enums: String,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: new (a: string, c: grpc.ChannelCredentials) => GrpcHealth } } };
  };
  const c = new pkg.grpc.health.v1.Health(
    `127.0.0.1:${observer.port}`,
    grpc.credentials.createInsecure(),
  );
  return new Promise<{ status: string }>((resolve, reject) =>
    c.Check({ service }, (err, res) => {
      c.close();
      if (err) reject(err);
      else resolve(res);
    }),
  ).catch((err: grpc.ServiceError) => ({ status: `error ${err.code}` }));
}

describe("observer server", () => {
  test.each([
    ["", "SERVING"],
    ["observer.Observer", "SERVING"],
    ["hubble.server.Observer", "SERVING"],
    ["no.Such", `error ${grpc.status.NOT_FOUND}`],
  ])("server - grpc.health.v1 Check(%p) answers %s", async (service, want) => {
    expect((await healthCheck(service)).status).toBe(want);
  });

  test("server - a FlowBatch published on NATS is served by GetFlows to a grpc-js client", async () => {
    await publishFlows("node-x", ["10.1.0.1", "10.1.0.2", "10.1.0.3"]);
    await waitFor(() => observer.store.seenFlows >= 3, { what: "3 flows ingested" });
    const { msgs, status } = await readAll(client.GetFlows({ number: 2 }));
    expect(status.code).toBe(grpc.status.OK);
    expect(msgs).toHaveLength(2);
    const flows = msgs.map((m) => m.flow as { IP: { source: string }; node_name: string });
    expect(flows.map((f) => f.IP.source)).toEqual(["10.1.0.2", "10.1.0.3"]);
    expect(msgs[0]?.node_name).toBe("node-x");
    expect(msgs[0]?.response_types).toBe("flow");
  });

  test("server - ServerStatus over grpc-js reports the ingested flows", async () => {
    await waitFor(() => observer.store.seenFlows >= 3, { what: "flows ingested" });
    const res = await new Promise<Record<string, unknown>>((resolve, reject) =>
      client.ServerStatus({}, (err, r) => (err ? reject(err) : resolve(r))),
    );
    expect(Number(res.num_flows)).toBeGreaterThanOrEqual(3);
    expect(res.max_flows).toBe("100");
    expect(res.version).toStartWith("periscope ");
    expect(res.num_connected_nodes).toEqual({ value: 1 });
  });

  test("server - invalid filter returns INVALID_ARGUMENT in trailers", async () => {
    const err = await readAll(client.GetFlows({ whitelist: [{ source_ip: ["bogus"] }] })).catch(
      (e: grpc.ServiceError) => e,
    );
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as grpc.ServiceError).details).toContain("source_ip");
    // ":", "/" and spaces arrive as sent (gRPC percent-encodes only non-printable bytes).
    expect((err as grpc.ServiceError).details).not.toContain("%");
    expect((err as grpc.ServiceError).details).toContain('"bogus"');
    expect((err as grpc.ServiceError).details).toMatch(/source_ip[^%]*:/);
  });

  test("server - responses carry hubble-server-version, errors too", async () => {
    const { version } = (await import("../package.json", { with: { type: "json" } })).default;
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    const unary = await new Promise<grpc.Metadata>((resolve, reject) => {
      const call = client.ServerStatus({}, (err) => err && reject(err));
      call.on("metadata", resolve);
    });
    expect(unary.get("hubble-server-version")).toEqual([version]);
    const stream = client.GetFlows({ whitelist: [{ source_ip: ["bogus"] }] });
    const failed = await new Promise<grpc.Metadata>((resolve, reject) => {
      let header: grpc.Metadata | undefined;
      stream.on("metadata", (m: grpc.Metadata) => {
        header = m;
      });
      stream.on("error", (err: grpc.ServiceError) => {
        // A trailers-only error response carries its headers with the status.
        const h = header ?? err.metadata;
        if (err.code === grpc.status.INVALID_ARGUMENT) resolve(h);
        else reject(err);
      });
    });
    expect(failed.get("hubble-server-version")).toEqual([version]);
  });

  test("server - follow over grpc-js receives a batch published later", async () => {
    const stream = client.GetFlows({ follow: true });
    const got = new Promise<Record<string, unknown>>((resolve) => stream.once("data", resolve));
    stream.on("error", () => undefined); // cancellation below surfaces as CANCELLED
    // The follower is registered once it is parked waiting for the next write.
    const before = observer.store.seenFlows;
    await waitFor(() => observer.store.ring.waiters > 0, {
      what: "follower to wait for new flows",
    });
    await publishFlows("node-y", ["10.2.0.1"]);
    const msg = await got;
    expect((msg.flow as { IP: { source: string } }).IP.source).toBe("10.2.0.1");
    expect(observer.store.seenFlows).toBeGreaterThan(before);
    stream.cancel();
  });

  test("server - a malformed payload is counted and ingest continues", async () => {
    const metric = async () => {
      const text = await (await fetch(`http://127.0.0.1:${observer.opsPort}/metrics`)).text();
      const m = /periscope_observer_errors_total\{kind="malformed_batch"\} (\d+)/.exec(text);
      return Number(m?.[1] ?? 0);
    };
    const before = await metric();
    nc.publish(subjects.flows("node-bad"), new Uint8Array([0xff, 0xff, 0xff, 0x01]));
    await waitFor(async () => (await metric()) === before + 1, { what: "malformed batch counted" });
    const seen = observer.store.seenFlows;
    await publishFlows("node-x", ["10.3.0.1"]);
    await waitFor(() => observer.store.seenFlows === seen + 1, { what: "ingest to continue" });
  });
});
