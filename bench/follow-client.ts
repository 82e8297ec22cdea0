/**
 * Child process of the pipeline bench: a GetFlows follow client (gRPC over h2c, as the
 * hubble CLI connects) that counts flows per node, lost events per node and source,
 * and each flow's end-to-end latency (arrival wall time − flow.time, which the
 * enricher derives from the kernel's boot timestamp). Talks to the parent over IPC:
 * see {@link FollowRequest} / {@link FollowReply}. Run as `bun bench/follow-client.ts <url>`.
 *
 * With `--count` it only counts: a raw HTTP/2 GetFlows call (gRPC, or gRPC-Web with `--web`;
 * with `--connect` Connect over HTTP/1.1 through fetch, as a browser calls, and with
 * `--handler` too in a form only the observer's Connect handler serves) whose messages are
 * told apart by their first byte (flow = field 1, lost_events = field 3; only lost events are decoded), so
 * the client costs ~1 µs per message and is not what a measurement measures. `--number=N`
 * asks for the last N stored flows before following. Its counts are reported under node "*".
 */

import * as http2 from "node:http2";
import { brotliCompressSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  GetFlowsRequestSchema,
  GetFlowsResponseSchema,
  LostEventSource,
  Observer,
} from "@periscope/proto";
import { LatencySamples, type LatencySummary } from "./report.ts";

/** What the parent asks: counts so far, or one node's latency percentiles. */
export type FollowQuery =
  | { readonly type: "snapshot" }
  | { readonly type: "latency"; readonly node: string };

/** Parent → child: a query and the id its reply carries. */
export type FollowRequest = FollowQuery & { readonly id: number };

/** Counts of one node's events seen on the stream so far. */
export interface NodeCounts {
  flows: number;
  /** Events reported lost, by LostEventSource name. */
  lost: Record<string, number>;
}

/** Child → parent. */
export type FollowReply =
  | { readonly type: "snapshot"; readonly id: number; readonly nodes: Record<string, NodeCounts> }
  | ({ readonly type: "latency"; readonly id: number } & LatencySummary)
  | { readonly type: "error"; readonly message: string };

function send(reply: FollowReply): void {
  process.send?.(reply);
}

/** HTTP/2 stream and connection receive window of the counting follower, bytes. */
const WINDOW_BYTES = 16 * 1024 * 1024;

/** Options of the counting follower. */
export interface CountOptions {
  /** gRPC-Web instead of gRPC. */
  readonly web: boolean;
  /** Connect (binary) over HTTP/1.1 through fetch, the browser's path, instead. */
  readonly connect?: boolean;
  /**
   * With `connect`: the request brotli-compressed, answers uncompressed, which only the
   * Connect handler serves (its per-message path, the baseline of the stream writer).
   */
  readonly handler?: boolean;
  /** Last N stored flows first (0: only new ones). */
  readonly number: bigint;
}

/**
 * Counts the enveloped messages of a GetFlows body as it arrives: flows by their first
 * byte, lost events decoded for their count; a gRPC-Web trailer frame is skipped.
 */
export class EnvelopeCounter {
  flows = 0;
  lost = 0;
  #head = Buffer.alloc(0);

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.#head.length > 0) {
      buf = Buffer.concat([this.#head, chunk]);
      this.#head = Buffer.alloc(0);
    }
    let at = 0;
    while (buf.length - at >= 5) {
      const len = buf.readUInt32BE(at + 1);
      if (buf.length - at - 5 < len) break;
      const flags = buf[at] ?? 0;
      const first = buf[at + 5];
      if ((flags & 0x80) === 0) {
        if (first === 0x0a) this.flows++;
        else if (first === 0x1a) {
          const r = fromBinary(GetFlowsResponseSchema, buf.subarray(at + 5, at + 5 + len));
          if (r.responseTypes.case === "lostEvents") {
            this.lost += Number(r.responseTypes.value.numEventsLost);
          }
        }
      }
      at += 5 + len;
    }
    if (at < buf.length) this.#head = Buffer.from(buf.subarray(at));
  }
}

/** The counting follower: a raw HTTP/2 GetFlows call; see the file's doc comment. */
async function count(url: string, opts: CountOptions): Promise<void> {
  const counter = new EnvelopeCounter();
  process.on("message", (msg: FollowRequest) => {
    const nodes = { "*": { flows: counter.flows, lost: { HUBBLE_RING_BUFFER: counter.lost } } };
    if (msg.type === "snapshot") send({ type: "snapshot", id: msg.id, nodes });
  });
  process.on("disconnect", () => process.exit(0));
  const req = toBinary(
    GetFlowsRequestSchema,
    create(GetFlowsRequestSchema, { follow: true, number: opts.number }),
  );
  const env = Buffer.alloc(5 + req.length);
  env.writeUInt32BE(req.length, 1);
  env.set(req, 5);
  if (opts.connect) {
    const headers: Record<string, string> = {
      "content-type": "application/connect+proto",
      "connect-protocol-version": "1",
    };
    let body = env;
    if (opts.handler) {
      const packed = brotliCompressSync(req);
      body = Buffer.alloc(5 + packed.length);
      body[0] = 1; // compressed
      body.writeUInt32BE(packed.length, 1);
      body.set(packed, 5);
      headers["connect-content-encoding"] = "br";
      headers["connect-accept-encoding"] = "identity";
    }
    const res = await fetch(`${url}/observer.Observer/GetFlows`, {
      method: "POST",
      headers,
      body,
    });
    if (res.body === null) throw new Error(`GetFlows over Connect: HTTP ${res.status}, no body`);
    for await (const chunk of res.body) counter.push(Buffer.from(chunk));
    return;
  }
  // Windows as large as grpc-go's dynamic ones grow to: the default 64 KiB would make
  // every 64 KiB wait for this process to be scheduled and send a WINDOW_UPDATE.
  const session = http2.connect(url, { settings: { initialWindowSize: WINDOW_BYTES } });
  session.once("connect", () => session.setLocalWindowSize(WINDOW_BYTES));
  const stream = session.request({
    ":method": "POST",
    ":path": "/observer.Observer/GetFlows",
    "content-type": opts.web ? "application/grpc-web+proto" : "application/grpc",
    te: "trailers",
  });
  stream.end(env);
  for await (const chunk of stream) counter.push(chunk as Buffer);
  session.close();
}

async function follow(url: string): Promise<void> {
  const nodes: Record<string, NodeCounts> = {};
  const latencies = new Map<string, LatencySamples>();
  const counts = (node: string): NodeCounts => {
    let c = nodes[node];
    if (c === undefined) {
      c = { flows: 0, lost: {} };
      nodes[node] = c;
    }
    return c;
  };
  process.on("message", (msg: FollowRequest) => {
    if (msg.type === "snapshot") send({ type: "snapshot", id: msg.id, nodes });
    else {
      const s = latencies.get(msg.node)?.summary();
      const none = {
        count: 0,
        min: Number.NaN,
        p50: Number.NaN,
        p90: Number.NaN,
        p99: Number.NaN,
        max: Number.NaN,
      };
      send({ type: "latency", id: msg.id, ...(s ?? none) });
    }
  });
  process.on("disconnect", () => process.exit(0));

  const client = createClient(Observer, createGrpcTransport({ baseUrl: url }));
  const origin = performance.timeOrigin;
  for await (const resp of client.getFlows({ follow: true })) {
    const arrivedMs = origin + performance.now();
    const ev = resp.responseTypes;
    if (ev.case === "flow") {
      const node = ev.value.nodeName;
      counts(node).flows++;
      const t = ev.value.time;
      if (t !== undefined) {
        let s = latencies.get(node);
        if (s === undefined) {
          s = new LatencySamples();
          latencies.set(node, s);
        }
        s.push(arrivedMs - (Number(t.seconds) * 1000 + t.nanos / 1e6));
      }
    } else if (ev.case === "lostEvents") {
      const lost = counts(resp.nodeName).lost;
      const source = LostEventSource[ev.value.source] ?? String(ev.value.source);
      lost[source] = (lost[source] ?? 0) + Number(ev.value.numEventsLost);
    }
  }
}

if (import.meta.main) {
  const url = process.argv[2];
  if (url === undefined) {
    process.stderr.write(
      "usage: bun bench/follow-client.ts <observer url> [--count [--web | --connect [--handler]] [--number=N]]\n",
    );
    process.exit(2);
  }
  const flags = process.argv.slice(3);
  const number = BigInt(flags.find((f) => f.startsWith("--number="))?.slice(9) ?? "0");
  const run = flags.includes("--count")
    ? count(url, {
        web: flags.includes("--web"),
        connect: flags.includes("--connect"),
        handler: flags.includes("--handler"),
        number,
      })
    : follow(url);
  run.then(
    () => process.exit(0),
    (err: unknown) => {
      send({ type: "error", message: err instanceof Error ? err.message : String(err) });
      process.stderr.write(`follow-client: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
