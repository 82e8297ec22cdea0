/**
 * GetFlows streams as real processes: a real nats-server, the observer started as
 * `bun services/observer/src/main.ts`, plain @grpc/grpc-js followers (one of them its own
 * process, SIGSTOP'd), raw HTTP/2 requests to compare the gRPC stream writer's bytes with
 * the Connect handler's.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as http2 from "node:http2";
import { join, resolve } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import { freePort, type LocalNats, Supervisor, startLocalNats, waitFor } from "@periscope/devstack";
import {
  FlowBatchSchema,
  GetFlowsRequestSchema,
  GetFlowsResponseSchema,
  Observer,
} from "@periscope/proto";
import { testFlowResponse } from "../services/observer/src/testing.ts";
import { sumMetric } from "./harness.ts";
import type { FollowerCounts } from "./stream-follower.ts";

const ROOT = resolve(import.meta.dir, "..");
const RING = 4096;
const CAP = 3;

let nats: LocalNats;
let nc: NatsConnection;
const sup = new Supervisor({ sink: () => undefined, stopTimeoutMs: 8000, keepLines: 2000 });
let port = 0;
let ops = 0;
const children: ReturnType<typeof Bun.spawn>[] = [];

const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> =>
  sumMetric(await (await fetch(`http://127.0.0.1:${ops}/metrics`)).text(), name, labels);

/** Publishes `n` flows in batches of `per`, flushing every few batches. */
async function publishFlows(node: string, n: number, per = 200, net = 77): Promise<void> {
  for (let i = 0; i < n; i += per) {
    const count = Math.min(per, n - i);
    const batch = create(FlowBatchSchema, {
      responses: Array.from({ length: count }, (_, k) =>
        testFlowResponse({
          timeMs: Date.now(),
          node,
          src: `10.${net}.${((i + k) >> 8) & 255}.${(i + k) & 255}`,
        }),
      ),
    });
    nc.publish(subjects.flows(node), toBinary(FlowBatchSchema, batch));
    if ((i / per) % 10 === 9) await nc.flush();
  }
  await nc.flush();
}

/**
 * An in-process grpc-js follower that takes messages as bytes and counts them by their
 * first field (flow = 1, lost_events = 3), so the test process is not what limits it.
 */
function follower(): {
  counts: () => { flows: number; lost: number };
  status: Promise<grpc.StatusObject>;
  cancel(): void;
} {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client.makeServerStreamRequest(
    "/observer.Observer/GetFlows",
    (b: Buffer) => b,
    (b: Buffer) => b,
    Buffer.from(toBinary(GetFlowsRequestSchema, create(GetFlowsRequestSchema, { follow: true }))),
  );
  let flows = 0;
  let lost = 0;
  call.on("data", (b: Buffer) => {
    if (b[0] === 0x0a) flows++;
    else if (b[0] === 0x1a) {
      const r = fromBinary(GetFlowsResponseSchema, b);
      if (r.responseTypes.case === "lostEvents")
        lost += Number(r.responseTypes.value.numEventsLost);
    }
  });
  call.on("error", () => undefined);
  const status = new Promise<grpc.StatusObject>((done) =>
    call.on("status", (s: grpc.StatusObject) => {
      client.close();
      done(s);
    }),
  );
  return { counts: () => ({ flows, lost }), status, cancel: () => call.cancel() };
}

/** The follower process: SIGSTOP-able, asked for its counts over IPC. */
function followerProcess(): {
  proc: ReturnType<typeof Bun.spawn>;
  counts(): Promise<FollowerCounts>;
} {
  let pending: ((c: FollowerCounts) => void) | undefined;
  const proc = Bun.spawn(["bun", join(ROOT, "tests/stream-follower.ts"), String(port)], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
    serialization: "json",
    ipc: (msg: FollowerCounts) => {
      pending?.(msg);
      pending = undefined;
    },
  });
  children.push(proc);
  return {
    proc,
    counts: () =>
      new Promise<FollowerCounts>((done) => {
        pending = done;
        proc.send({ type: "counts" });
      }),
  };
}

/**
 * One raw HTTP/2 call: response headers, the enveloped frames of the body, trailers. With
 * `limit` the call is cancelled once that many frames arrived (a follow stream).
 */
async function rawCall(
  path: string,
  contentType: string,
  message: Uint8Array,
  limit = Number.POSITIVE_INFINITY,
): Promise<{
  headers: http2.IncomingHttpHeaders;
  frames: { flags: number; data: Buffer }[];
  trailers: http2.IncomingHttpHeaders;
}> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const env = Buffer.alloc(5 + message.length);
    env.writeUInt32BE(message.length, 1);
    env.set(message, 5);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": contentType,
      te: "trailers",
    });
    stream.end(env);
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => {
      headers = h;
    });
    stream.on("trailers", (t) => {
      trailers = t;
    });
    const frames: { flags: number; data: Buffer }[] = [];
    let body = Buffer.alloc(0);
    for await (const c of stream) {
      body = Buffer.concat([body, c as Buffer]);
      while (body.length >= 5 && body.length >= 5 + body.readUInt32BE(1)) {
        const len = body.readUInt32BE(1);
        frames.push({ flags: body[0] ?? 0, data: Buffer.from(body.subarray(5, 5 + len)) });
        body = body.subarray(5 + len);
      }
      if (frames.length >= limit) {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        break;
      }
    }
    return { headers, frames, trailers };
  } finally {
    session.close();
  }
}

beforeAll(async () => {
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  port = await freePort();
  ops = await freePort();
  sup.start("stream-observer", ["bun", "run", join(ROOT, "services/observer/src/main.ts")], {
    env: {
      PERISCOPE_NATS_URL: nats.url,
      PERISCOPE_NODE_NAME: "stream-observer",
      PERISCOPE_LISTEN_ADDR: `127.0.0.1:${port}`,
      PERISCOPE_OPS_ADDR: `127.0.0.1:${ops}`,
      PERISCOPE_SORT_BUFFER_MS: "0",
      PERISCOPE_MAX_FLOWS: String(RING),
      PERISCOPE_MAX_CONCURRENT_STREAMS: String(CAP),
      PERISCOPE_HISTORY_SINCE: "0",
    },
    cwd: ROOT,
  });
  await waitFor(
    async () => {
      const p = sup.get("stream-observer");
      if (p && p.exitCode() !== null) throw new Error(`observer exited:\n${p.lines().join("\n")}`);
      return (await fetch(`http://127.0.0.1:${ops}/readyz`).catch(() => undefined))?.ok === true;
    },
    { timeoutMs: 30_000, what: "observer ready" },
  );
}, 60_000);

afterAll(async () => {
  for (const c of children) {
    c.kill("SIGCONT");
    c.kill("SIGKILL");
  }
  await sup.stop();
  await nc?.close();
  await nats?.stop();
});

describe("observer streams", () => {
  test("stream - a SIGSTOP'd follower slows neither ingest nor another follower; resumed, it is told exactly what it lost", async () => {
    const stuck = followerProcess();
    let live: ReturnType<typeof follower> | undefined;
    try {
      await waitFor(async () => (await metric("periscope_observer_active_streams")) === 1, {
        what: "the follower process's stream",
        timeoutMs: 30_000,
      });
      stuck.proc.kill("SIGSTOP");
      const f = follower();
      live = f;
      await waitFor(async () => (await metric("periscope_observer_active_streams")) === 2, {
        what: "the live follower's stream",
      });
      const received0 = await metric("periscope_observer_flows_received_total");
      // Published in steps the live follower takes one after the other: each step is
      // half the ring, so it could never be lapped, while the stopped one falls behind.
      const n = 4 * RING;
      const step = RING / 2;
      for (let sent = step; sent <= n; sent += step) {
        await publishFlows("stream-node", step);
        await waitFor(() => f.counts().flows === sent, {
          what: `the live follower to get ${sent} flows`,
          timeoutMs: 15_000,
        }).catch((e: unknown) => {
          throw new Error(`live follower: ${JSON.stringify(f.counts())}`, { cause: e });
        });
      }
      expect((await metric("periscope_observer_flows_received_total")) - received0).toBe(n);
      expect(f.counts().lost).toBe(0);

      stuck.proc.kill("SIGCONT");
      let last: FollowerCounts | undefined;
      await waitFor(
        async () => {
          last = await stuck.counts();
          const lost = Object.values(last.lost).reduce((a, b) => a + b, 0);
          return last.flows + lost === n;
        },
        { what: "the resumed follower to account for every flow", timeoutMs: 20_000 },
      ).catch((e: unknown) => {
        throw new Error(`resumed follower: ${JSON.stringify(last)}`, { cause: e });
      });
      console.log(
        `stopped follower: ${last?.flows} flows received, ${JSON.stringify(last?.lost)} lost of ${n}`,
      );
      // It was lapped: the ring holds RING entries, its stream's queues about as many.
      expect(last?.lost.HUBBLE_RING_BUFFER ?? 0).toBeGreaterThan(n - 3 * RING);
      expect(Object.keys(last?.lost ?? {})).toEqual(["HUBBLE_RING_BUFFER"]);
      expect(last?.status).toBeUndefined(); // still following
      // And it continues with new flows.
      await publishFlows("stream-node", 100);
      await waitFor(async () => (await stuck.counts()).flows === (last?.flows ?? 0) + 100, {
        what: "the resumed follower to get new flows",
      });
    } finally {
      live?.cancel();
      stuck.proc.kill("SIGCONT");
      stuck.proc.kill("SIGKILL");
      await stuck.proc.exited;
    }
    expect((await (live as ReturnType<typeof follower>).status).code).toBe(grpc.status.CANCELLED);
    await waitFor(async () => (await metric("periscope_observer_active_streams")) === 0, {
      what: "both streams to be gone",
    });
    expect(
      await metric("periscope_observer_requests_total", { method: "GetFlows", code: "canceled" }),
    ).toBeGreaterThanOrEqual(2);
  }, 90_000);

  test("stream - beyond --max-concurrent-streams a stream is refused with ResourceExhausted, counted", async () => {
    await waitFor(async () => (await metric("periscope_observer_active_streams")) === 0, {
      what: "no stream open",
    });
    const refused0 = await metric("periscope_observer_streams_refused_total");
    const open = Array.from({ length: CAP }, () => follower());
    try {
      await waitFor(async () => (await metric("periscope_observer_active_streams")) === CAP, {
        what: `${CAP} open streams`,
      });
      // gRPC (the stream writer) and gRPC-Web (the Connect handler), GetFlows and GetAgentEvents.
      const extra = follower();
      const status = await extra.status;
      expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(status.details).toContain(`at most ${CAP} at a time (--max-concurrent-streams)`);
      const web = createClient(
        Observer,
        createGrpcWebTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "2" }),
      );
      for (const call of [
        () => web.getAgentEvents({ follow: true }),
        () => web.getFlows({ follow: true }),
      ]) {
        const err = await (async () => {
          for await (const _ of call()) return undefined;
        })().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ConnectError);
        expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
      }
      expect(await metric("periscope_observer_streams_refused_total")).toBe(refused0 + 3);
      // A slot given back is taken again.
      open[0]?.cancel();
      await waitFor(async () => (await metric("periscope_observer_active_streams")) === CAP - 1, {
        what: "a slot to be given back",
      });
      open.push(follower());
      await waitFor(async () => (await metric("periscope_observer_active_streams")) === CAP, {
        what: "the new stream",
      });
    } finally {
      for (const f of open) f.cancel();
    }
    await waitFor(async () => (await metric("periscope_observer_active_streams")) === 0, {
      what: "every stream to be gone",
    });
  }, 30_000);

  test("stream - gRPC and gRPC-Web answers carry byte for byte the same messages (both compared with the Connect handler in fast-web-stream.server.test.ts)", async () => {
    await publishFlows("bytes-node", 300, 100, 78);
    const requests = [
      create(GetFlowsRequestSchema, { number: 300n }),
      create(GetFlowsRequestSchema, {
        number: 50n,
        fieldMask: { paths: ["source", "IP", "time"] },
        whitelist: [{ sourceIp: ["10.78.0.7", "10.78.0.9"] }],
      }),
      create(GetFlowsRequestSchema, { number: 20n, first: true }),
    ];
    for (const req of requests) {
      const msg = toBinary(GetFlowsRequestSchema, req);
      const path = "/observer.Observer/GetFlows";
      const fast = await rawCall(path, "application/grpc", msg);
      const web = await rawCall(path, "application/grpc-web+proto", msg);
      expect(fast.trailers["grpc-status"]).toBe("0");
      expect(fast.headers["hubble-server-version"]).toBeDefined();
      expect(fast.headers["hubble-server-version"]).toBe(web.headers["hubble-server-version"]);
      const webMessages = web.frames.filter((f) => (f.flags & 0x80) === 0);
      expect(web.frames.at(-1)?.data.toString()).toContain("grpc-status: 0");
      expect(fast.frames.length).toBeGreaterThan(0);
      expect(fast.frames.map((f) => f.data.toString("hex"))).toEqual(
        webMessages.map((f) => f.data.toString("hex")),
      );
      const decoded = fast.frames.map((f) => fromBinary(GetFlowsResponseSchema, f.data));
      if (req.whitelist.length > 0) {
        expect(decoded.map((r) => r.responseTypes.case)).toEqual(["flow", "flow"]);
        const flow = decoded[0]?.responseTypes.value as { IP?: unknown; destination?: unknown };
        expect(flow.IP).toBeDefined();
        expect(flow.destination).toBeUndefined(); // masked away
      } else {
        expect(decoded.length).toBe(Number(req.number));
      }
    }
    // A follow stream that starts with the last 100 flows: read from the ring directly.
    const followReq = toBinary(
      GetFlowsRequestSchema,
      create(GetFlowsRequestSchema, { follow: true, number: 100n }),
    );
    const path = "/observer.Observer/GetFlows";
    const fastFollow = await rawCall(path, "application/grpc", followReq, 100);
    const webFollow = await rawCall(path, "application/grpc-web+proto", followReq, 100);
    expect(fastFollow.frames.length).toBe(100);
    expect(fastFollow.frames.map((f) => f.data.toString("hex"))).toEqual(
      webFollow.frames.map((f) => f.data.toString("hex")),
    );
    // A bad request is refused the same way on both paths.
    const bad = toBinary(
      GetFlowsRequestSchema,
      create(GetFlowsRequestSchema, { follow: true, first: true }),
    );
    const fast = await rawCall("/observer.Observer/GetFlows", "application/grpc", bad);
    expect(fast.trailers["grpc-status"]).toBe(String(Code.InvalidArgument));
    expect(fast.trailers["grpc-message"]).toBe("first cannot be specified with follow");
    expect(fast.frames.length).toBe(0);
  }, 30_000);
});
