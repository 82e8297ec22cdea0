/**
 * Connect and gRPC-Web binary GetFlows, served by the stream writer gRPC uses, against
 * the Connect handler on the same store: real nats-server, the observer in this process,
 * the browser's clients (@connectrpc/connect-web over fetch, HTTP/1.1), Node's clients
 * over HTTP/2, curl for the raw bytes and, SIGSTOP'd, as a reader that stops reading.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import * as node from "@connectrpc/connect-node";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import {
  FlowBatchSchema,
  GetFlowsRequestSchema,
  GetFlowsResponseSchema,
  LostEventSource,
  Observer,
} from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { parseConfig } from "./config.ts";
import { decodeBase64Runs } from "./fast-core.ts";
import { type DualListener, listenDual } from "./listen.ts";
import { observerRoutes } from "./routes.ts";
import { OBSERVER_VERSION, type RunningObserver, startObserver } from "./server.ts";
import { testFlowResponse } from "./testing.ts";

// A loaded machine runs several clients' streams per test one after the other.
setDefaultTimeout(30_000);

type Req = MessageInitShape<typeof GetFlowsRequestSchema>;
const RequestSchema = GetFlowsRequestSchema;

const NODE = "fast-web-observer";
const RING = 4096;
const CAP = 4;
const MAX_REQUEST = 64 * 1024;
/** Wall-clock ms of the first published flow; flow i is BASE_MS + i. */
const BASE_MS = Date.now() - 60_000;

let nats: LocalNats;
let nc: NatsConnection;
let observer: RunningObserver;
/** The Connect handler alone (no stream writer) on the observer's store. */
let reference: DualListener;
let refUrl = "";
let published = 0;
const dir = mkdtempSync(join(tmpdir(), "fast-web-stream-"));
const curls: ReturnType<typeof Bun.spawn>[] = [];

/**
 * Publishes `n` flows, flow i at BASE_MS + i with a source address from i; with `pad`, a
 * source pod name that long (bigger flows).
 */
async function publish(n: number, per = 500, pad = 0): Promise<void> {
  for (let i = 0; i < n; i += per) {
    const count = Math.min(per, n - i);
    const batch = create(FlowBatchSchema, {
      responses: Array.from({ length: count }, (_, k) => {
        const at = published + i + k;
        return testFlowResponse({
          timeMs: BASE_MS + at,
          node: "web-node",
          src: `10.91.${(at >> 8) & 255}.${at & 255}`,
          ...(pad > 0 ? { srcPod: "p".repeat(pad) } : {}),
        });
      }),
    });
    nc.publish(subjects.flows("web-node"), toBinary(FlowBatchSchema, batch));
    if ((i / per) % 20 === 19) await nc.flush();
  }
  await nc.flush();
  published += n;
  const want = published;
  await waitFor(() => observer.store.seenFlows >= want, { what: `${want} flows ingested` });
}

/** The observer's open streams, from its gauge. */
async function activeStreams(): Promise<number> {
  return (await observer.metrics.activeStreams.get()).values[0]?.value ?? 0;
}

const transports = {
  "connect-web Connect (HTTP/1.1)": (url: string) =>
    createConnectTransport({ baseUrl: url, useBinaryFormat: true }),
  "connect-web gRPC-Web (HTTP/1.1)": (url: string) =>
    createGrpcWebTransport({ baseUrl: url, useBinaryFormat: true }),
  "connect-node Connect (HTTP/2)": (url: string) =>
    node.createConnectTransport({ baseUrl: url, httpVersion: "2" }),
  "connect-node gRPC-Web (HTTP/2)": (url: string) =>
    node.createGrpcWebTransport({ baseUrl: url, httpVersion: "2" }),
  "connect-node gRPC (HTTP/2)": (url: string) => node.createGrpcTransport({ baseUrl: url }),
} satisfies Record<string, (url: string) => Transport>;
type TransportName = keyof typeof transports;
const NAMES = Object.keys(transports) as TransportName[];

/** Every response of a call as hex-encoded bytes, or the error it ended with. */
async function call(
  name: TransportName,
  url: string,
  req: Req,
  opts: { limit?: number; signal?: AbortSignal } = {},
): Promise<{ messages: string[]; error?: ConnectError }> {
  const client = createClient(Observer, transports[name](url));
  const abort = new AbortController();
  opts.signal?.addEventListener("abort", () => abort.abort(), { once: true });
  const messages: string[] = [];
  try {
    for await (const r of client.getFlows(req, { signal: abort.signal })) {
      messages.push(Buffer.from(toBinary(GetFlowsResponseSchema, r)).toString("hex"));
      if (messages.length === opts.limit) {
        abort.abort();
        break;
      }
    }
    return { messages };
  } catch (e) {
    return { messages, error: ConnectError.from(e) };
  }
}

/** Envelopes of a raw Connect or gRPC-Web body. */
function envelopes(body: Buffer): { flags: number; data: Buffer }[] {
  const out: { flags: number; data: Buffer }[] = [];
  let at = 0;
  while (at + 5 <= body.length) {
    const len = body.readUInt32BE(at + 1);
    if (at + 5 + len > body.length) break;
    out.push({ flags: body[at] ?? 0, data: body.subarray(at + 5, at + 5 + len) });
    at += 5 + len;
  }
  return out;
}

/** `req` as a one-message request body. */
function requestBody(req: Req): Buffer {
  const msg = toBinary(RequestSchema, create(RequestSchema, req));
  const out = Buffer.alloc(5 + msg.length);
  out.writeUInt32BE(msg.length, 1);
  out.set(msg, 5);
  return out;
}

/**
 * curl over HTTP/1.1 posting `req` (base64 for grpc-web-text), the body to `out`, headers
 * to `out`.headers.
 */
function curl(contentType: string, req: Req, out: string, extra: string[] = []): Bun.Subprocess {
  const reqFile = `${out}.req`;
  const body = requestBody(req);
  writeFileSync(reqFile, contentType.includes("-text") ? body.toString("base64") : body);
  const proc = Bun.spawn(
    [
      "curl",
      "-sS",
      "-N",
      "--http1.1",
      "-X",
      "POST",
      "-H",
      `content-type: ${contentType}`,
      ...extra,
      "--data-binary",
      `@${reqFile}`,
      "-D",
      `${out}.headers`,
      "-o",
      out,
      `${observer.url}/observer.Observer/GetFlows`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  curls.push(proc);
  return proc;
}

beforeAll(async () => {
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  const config = parseConfig(
    ["--listen-address", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--nats-url", nats.url],
    {
      PERISCOPE_NODE_NAME: NODE,
      PERISCOPE_MAX_FLOWS: String(RING),
      PERISCOPE_SORT_BUFFER_MS: "0",
      PERISCOPE_HISTORY_SINCE: "0",
      PERISCOPE_MAX_CONCURRENT_STREAMS: String(CAP),
      PERISCOPE_MAX_REQUEST_BYTES: String(MAX_REQUEST),
    },
  );
  observer = await startObserver(config, {
    log: createLogger("observer", "silent"),
    noOps: true,
  });
  const handler = connectNodeAdapter({
    routes: observerRoutes({ store: observer.store, nodeName: NODE, version: OBSERVER_VERSION }),
  });
  reference = await listenDual("127.0.0.1:0", handler);
  const port = (reference.server.address() as { port: number }).port;
  refUrl = `http://127.0.0.1:${port}`;
  await publish(600);
}, 60_000);

afterAll(async () => {
  for (const c of curls) {
    c.kill("SIGCONT");
    c.kill("SIGKILL");
  }
  await reference?.close(0);
  await observer?.stop();
  await nc?.close();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("Connect and gRPC-Web GetFlows from the stream writer", () => {
  const requests: [string, Req][] = [
    ["history", { number: 300n }],
    [
      "mask + filter",
      {
        number: 50n,
        fieldMask: { paths: ["source", "IP", "time"] },
        whitelist: [{ sourceIp: ["10.91.0.7", "10.91.1.9", "10.91.2.30"] }],
      },
    ],
    ["first", { number: 20n, first: true }],
    [
      "since + until",
      { since: timestampFromMs(BASE_MS + 100), until: timestampFromMs(BASE_MS + 199) },
    ],
    ["blacklist, all", { blacklist: [{ sourceIp: ["10.91.0.1"] }] }],
  ];
  for (const [what, req] of requests) {
    test(`fast-web - ${what}: the same messages as the Connect handler on every client`, async () => {
      const want = await call("connect-web Connect (HTTP/1.1)", refUrl, req);
      expect(want.error).toBeUndefined();
      expect(want.messages.length).toBeGreaterThan(0);
      for (const name of NAMES) {
        const got = await call(name, observer.url, req);
        expect({ name, error: got.error }).toEqual({ name, error: undefined });
        expect(got.messages).toEqual(want.messages);
      }
      if (what === "since + until") expect(want.messages.length).toBe(100);
      if (what === "mask + filter") expect(want.messages.length).toBe(3);
    });
  }

  test("fast-web - follow: the last 100, then new flows as they come, on every client", async () => {
    const before = published;
    const stop = new AbortController();
    const opts = { limit: 150, signal: stop.signal };
    const runs = [
      call("connect-web Connect (HTTP/1.1)", refUrl, { follow: true, number: 100n }, opts),
      ...NAMES.slice(0, CAP - 1).map((name) =>
        call(name, observer.url, { follow: true, number: 100n }, opts),
      ),
    ];
    let results: Awaited<(typeof runs)[number]>[];
    try {
      await waitFor(async () => (await activeStreams()) === CAP - 1, {
        what: "the follow streams",
      });
      await publish(50);
      results = await Promise.all(runs);
    } finally {
      stop.abort();
    }
    const [want, ...got] = results;
    expect(want?.messages.length).toBe(150);
    for (const g of got) expect(g.messages).toEqual(want?.messages ?? []);
    expect(published).toBe(before + 50);
    await waitFor(async () => (await activeStreams()) === 0, { what: "the streams to end" });
  });

  test("fast-web - errors end the stream with the Connect handler's code and message", async () => {
    const bad: Req[] = [
      { whitelist: [{ sourceIp: ["not-an-ip"] }] },
      { follow: true, first: true },
      { number: 5n, fieldMask: { paths: ["no_such_field"] } },
    ];
    for (const req of bad) {
      const want = await call("connect-web Connect (HTTP/1.1)", refUrl, req);
      expect(want.error?.code).toBe(Code.InvalidArgument);
      for (const name of NAMES) {
        const got = await call(name, observer.url, req);
        expect({ name, code: got.error?.code, message: got.error?.rawMessage }).toEqual({
          name,
          code: want.error?.code,
          message: want.error?.rawMessage,
        });
        expect(got.messages).toEqual([]);
      }
    }
    const count = (await observer.metrics.requests.get()).values.find(
      (v) => v.labels.method === "GetFlows" && v.labels.code === "invalid_argument",
    );
    expect(count?.value).toBeGreaterThanOrEqual(bad.length * NAMES.length);
  });

  test("fast-web - beyond --max-concurrent-streams a Connect stream is refused with ResourceExhausted", async () => {
    const stop = new AbortController();
    const runs = NAMES.slice(0, CAP).map((name) =>
      call(name, observer.url, { follow: true }, { signal: stop.signal }),
    );
    try {
      await waitFor(async () => (await activeStreams()) === CAP, { what: `${CAP} streams` });
      const refused0 = (await observer.metrics.streamsRefused.get()).values[0]?.value ?? 0;
      for (const name of NAMES.slice(0, 2)) {
        const got = await call(name, observer.url, { follow: true });
        expect(got.error?.code).toBe(Code.ResourceExhausted);
        expect(got.error?.rawMessage).toContain("--max-concurrent-streams");
      }
      expect((await observer.metrics.streamsRefused.get()).values[0]?.value).toBe(refused0 + 2);
    } finally {
      stop.abort();
    }
    for (const r of await Promise.all(runs)) expect(r.error?.code).toBe(Code.Canceled);
    await waitFor(async () => (await activeStreams()) === 0, { what: "the streams to end" });
  });

  test("fast-web - with credentials required, a Connect or gRPC-Web stream without or with a wrong token is Unauthenticated", async () => {
    writeFileSync(join(dir, "tokens"), "s3cret-token\n");
    const config = parseConfig(
      ["--listen-address", "127.0.0.1:0", "--nats-url", nats.url, "--max-flows", "100"],
      { PERISCOPE_NODE_NAME: "fast-web-auth", PERISCOPE_BEARER_TOKEN_FILE: join(dir, "tokens") },
    );
    const guarded = await startObserver(config, {
      log: createLogger("observer", "silent"),
      noOps: true,
    });
    try {
      for (const name of NAMES) {
        for (const [token, code] of [
          [undefined, Code.Unauthenticated],
          ["wrong", Code.Unauthenticated],
          ["s3cret-token", undefined],
        ] as const) {
          const client = createClient(Observer, transports[name](guarded.url));
          const headers: Record<string, string> =
            token === undefined ? {} : { authorization: `Bearer ${token}` };
          const err = await (async () => {
            for await (const _ of client.getFlows({ number: 1n }, { headers })) break;
          })().then(
            () => undefined,
            (e: unknown) => ConnectError.from(e),
          );
          expect({ name, token, code: err?.code }).toEqual({ name, token, code });
        }
      }
      const refused = (await guarded.metrics.requests.get()).values.find(
        (v) => v.labels.method === "GetFlows" && v.labels.code === "unauthenticated",
      );
      expect(refused?.value).toBe(2 * NAMES.length);
    } finally {
      await guarded.stop();
    }
  });

  test("fast-web - curl: raw Connect and gRPC-Web bodies, end-stream and trailers, timeouts", async () => {
    const want = await call("connect-web Connect (HTTP/1.1)", refUrl, { number: 3n });
    const cases = [
      { type: "application/connect+proto", req: { number: 3n }, extra: [] as string[] },
      { type: "application/grpc-web+proto", req: { number: 3n }, extra: [] },
      {
        type: "application/connect+proto",
        req: { follow: true },
        extra: ["-H", "connect-timeout-ms: 300"],
      },
      { type: "application/grpc-web", req: { follow: true }, extra: ["-H", "grpc-timeout: 300m"] },
    ];
    for (const [i, c] of cases.entries()) {
      const out = join(dir, `raw-${i}`);
      const proc = curl(c.type, c.req, out, c.extra);
      expect(await proc.exited).toBe(0);
      const head = readFileSync(`${out}.headers`, "latin1");
      expect(head).toStartWith("HTTP/1.1 200");
      expect(head.toLowerCase()).toContain(
        `content-type: ${c.type.includes("connect") ? "application/connect+proto" : "application/grpc-web+proto"}`,
      );
      expect(head.toLowerCase()).toContain("hubble-server-version:");
      const env = envelopes(readFileSync(out));
      const last = env.at(-1);
      const messages = env.slice(0, -1);
      expect(messages.every((m) => m.flags === 0)).toBe(true);
      const end = last?.data.toString() ?? "";
      if (c.req.follow) {
        expect(messages).toEqual([]);
        if (c.type.includes("connect")) {
          expect(last?.flags).toBe(0x02);
          expect(JSON.parse(end)).toEqual({
            error: { code: "deadline_exceeded", message: "the operation timed out after 300 ms" },
          });
        } else {
          expect(last?.flags).toBe(0x80);
          expect(end).toBe(
            "grpc-status: 4\r\ngrpc-message: the operation timed out after 300 ms\r\n",
          );
        }
      } else {
        expect(messages.map((m) => m.data.toString("hex"))).toEqual(want.messages);
        if (c.type.includes("connect")) {
          expect(last?.flags).toBe(0x02);
          expect(end).toBe("{}");
        } else {
          expect(last?.flags).toBe(0x80);
          expect(end).toBe("grpc-status: 0\r\n");
        }
      }
    }
  });

  test("fast-web - curl: gRPC-Web text (base64 both ways), which the Connect handler does not serve", async () => {
    const want = await call("connect-web gRPC-Web (HTTP/1.1)", refUrl, { number: 300n });
    expect(want.messages.length).toBe(300);
    const cases: [string, Req][] = [
      ["application/grpc-web-text", { number: 300n }],
      ["application/grpc-web-text+proto", { whitelist: [{ sourceIp: ["bad"] }] }],
    ];
    for (const [i, [type, req]] of cases.entries()) {
      const out = join(dir, `text-${i}`);
      const proc = curl(type, req, out);
      expect(await proc.exited).toBe(0);
      const head = readFileSync(`${out}.headers`, "latin1").toLowerCase();
      expect(head).toStartWith("http/1.1 200");
      expect(head).toContain("content-type: application/grpc-web-text+proto");
      const text = readFileSync(out, "latin1");
      expect(text).toMatch(/^[A-Za-z0-9+/=]+$/);
      const env = envelopes(decodeBase64Runs(text));
      const trailer = env.at(-1);
      expect(trailer?.flags).toBe(0x80);
      if (req.number !== undefined) {
        expect(env.slice(0, -1).map((m) => m.data.toString("hex"))).toEqual(want.messages);
        expect(trailer?.data.toString()).toBe("grpc-status: 0\r\n");
      } else {
        expect(env.length).toBe(1);
        expect(trailer?.data.toString()).toStartWith(
          `grpc-status: ${Code.InvalidArgument}\r\ngrpc-message: `,
        );
      }
    }
  });

  test("fast-web - curl: a request over the size cap ends with ResourceExhausted, the server answers on", async () => {
    const body = Buffer.alloc(5 + 4 * MAX_REQUEST);
    body.writeUInt32BE(4 * MAX_REQUEST, 1);
    const file = join(dir, "big.req");
    writeFileSync(file, body);
    const out = join(dir, "big");
    const proc = Bun.spawn(
      [
        "curl",
        "-sS",
        "--http1.1",
        "-H",
        "content-type: application/connect+proto",
        "--data-binary",
        `@${file}`,
        "-o",
        out,
        `${observer.url}/observer.Observer/GetFlows`,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    curls.push(proc);
    await proc.exited;
    const env = envelopes(readFileSync(out));
    expect(env.map((e) => e.flags)).toEqual([0x02]);
    expect(JSON.parse(env[0]?.data.toString() ?? "")).toEqual({
      error: {
        code: "resource_exhausted",
        message: `message size is larger than configured readMaxBytes ${MAX_REQUEST}`,
      },
    });
    const after = await call(NAMES[0] as TransportName, observer.url, { number: 2n });
    expect(after.messages.length).toBe(2);
  });

  test("fast-web - a client gone before its request is complete counts as canceled", async () => {
    const canceled = async (): Promise<number> =>
      (await observer.metrics.requests.get()).values.find(
        (v) => v.labels.method === "GetFlows" && v.labels.code === "canceled",
      )?.value ?? 0;
    const before = await canceled();
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: Number(new URL(observer.url).port),
      socket: { data: () => undefined },
    });
    socket.write(
      "POST /observer.Observer/GetFlows HTTP/1.1\r\nHost: x\r\n" +
        "Content-Type: application/connect+proto\r\nContent-Length: 100\r\n\r\n\0\0\0\0",
    );
    socket.end();
    await waitFor(async () => (await canceled()) === before + 1, {
      what: "the half-sent request to count as canceled",
    });
    expect(await activeStreams()).toBe(0);
  });

  test("fast-web - a Connect reader over HTTP/1.1 that stops reading is told exactly what it lost", async () => {
    const out = join(dir, "stopped");
    const proc = curl("application/connect+proto", { follow: true }, out);
    try {
      await waitFor(async () => (await activeStreams()) === 1, { what: "the curl stream" });
      proc.kill("SIGSTOP");
      // Far more than the ring, the stream's queue and the sockets' buffers (at most 4 MiB
      // sent and 32 MiB received here) hold together: ~700-byte flows, 60,000 of them.
      const n = 60_000;
      await publish(n, 500, 600);
      proc.kill("SIGCONT");
      let flows = 0;
      const lost: Record<string, number> = {};
      let size = -1;
      await waitFor(
        () => {
          const body = readFileSync(out);
          if (body.length === size) return false; // nothing new to count
          size = body.length;
          flows = 0;
          for (const k of Object.keys(lost)) delete lost[k];
          for (const m of envelopes(body)) {
            if (m.data[0] === 0x0a) flows++;
            else {
              const r = fromBinary(GetFlowsResponseSchema, m.data);
              if (r.responseTypes.case !== "lostEvents") continue;
              const src = LostEventSource[r.responseTypes.value.source];
              lost[src] = (lost[src] ?? 0) + Number(r.responseTypes.value.numEventsLost);
            }
          }
          return flows + Object.values(lost).reduce((a, b) => a + b, 0) === n;
        },
        { what: "the resumed reader to account for every flow", timeoutMs: 30_000 },
      ).catch((e: unknown) => {
        throw new Error(`resumed reader: ${flows} flows, lost ${JSON.stringify(lost)}`, {
          cause: e,
        });
      });
      console.log(
        `stopped Connect reader: ${flows} flows received, lost ${JSON.stringify(lost)} of ${n}`,
      );
      expect(Object.keys(lost)).toEqual(["HUBBLE_RING_BUFFER"]);
      expect(lost.HUBBLE_RING_BUFFER).toBeGreaterThan(0);
    } finally {
      proc.kill("SIGCONT");
      proc.kill("SIGKILL");
      await proc.exited;
    }
    await waitFor(async () => (await activeStreams()) === 0, { what: "the stream to end" });
  }, 90_000);
});
