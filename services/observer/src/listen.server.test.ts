import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { parseConfig } from "./config.ts";
import { H2_PREFACE, sniffProtocol } from "./listen.ts";
import { type RunningObserver, startObserver } from "./server.ts";

const PROTO_ROOT = join(import.meta.dir, "../../../proto");
const STATUS_PATH = "/observer.Observer/ServerStatus";
const MAX_REQUEST_BYTES = 2048;

let nats: LocalNats;
let observer: RunningObserver;

beforeAll(async () => {
  nats = await startLocalNats({});
  const config = parseConfig(
    [
      "--listen-address",
      "127.0.0.1:0",
      "--nats-url",
      nats.url,
      "--max-request-bytes",
      String(MAX_REQUEST_BYTES),
    ],
    { PERISCOPE_NODE_NAME: "listen-test", PERISCOPE_MAX_FLOWS: "100" },
  );
  observer = await startObserver(config, { log: createLogger("observer", "silent"), noOps: true });
});

afterAll(async () => {
  await observer?.stop();
  await nats?.stop();
});

/** Runs curl against the observer; returns the body and the HTTP version and status it saw. */
async function curl(
  args: string[],
  body: string,
): Promise<{ body: string; version: string; status: number }> {
  const proc = Bun.spawn(
    [
      "curl",
      "-sS",
      "-X",
      "POST",
      "-H",
      "Content-Type: application/json",
      "--data-binary",
      "@-",
      "-w",
      "\n%{http_version} %{http_code}",
      ...args,
      `${observer.url}${STATUS_PATH}`,
    ],
    { stdin: new Blob([body]), stdout: "pipe", stderr: "pipe" },
  );
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`curl exited ${code}: ${err}`);
  const cut = out.lastIndexOf("\n");
  const [version = "", status = "0"] = out.slice(cut + 1).split(" ");
  return { body: out.slice(0, cut), version, status: Number(status) };
}

function requestsCount(code: string): number {
  const metric = observer.metrics.requests as unknown as {
    hashMap: Record<string, { value: number; labels: Record<string, string> }>;
  };
  let n = 0;
  for (const v of Object.values(metric.hashMap)) {
    if (v.labels.method === "ServerStatus" && v.labels.code === code) n += v.value;
  }
  return n;
}

describe("listen - sniffProtocol", () => {
  test("listen - the full preface is h2, a prefix of it undecided, anything else http1", () => {
    expect(sniffProtocol(H2_PREFACE)).toBe("h2");
    expect(sniffProtocol(Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0])]))).toBe("h2");
    expect(sniffProtocol(H2_PREFACE.subarray(0, 3))).toBeUndefined();
    expect(sniffProtocol(new Uint8Array())).toBeUndefined();
    expect(sniffProtocol(Buffer.from("POST / HTTP/1.1\r\n"))).toBe("http1");
    expect(sniffProtocol(Buffer.from("PRI * HTTP/1.1\r\n"))).toBe("http1");
  });
});

describe("listen - one port, HTTP/1.1 and h2c", () => {
  test("listen - Connect JSON ServerStatus over HTTP/1.1 (curl) answers 200 JSON", async () => {
    const before = requestsCount("ok");
    const r = await curl(["--http1.1"], "{}");
    expect(r.version).toBe("1.1");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ version: expect.stringMatching(/^periscope /) });
    expect(requestsCount("ok")).toBe(before + 1); // metrics interceptor runs on this path too
  });

  test("listen - Connect JSON ServerStatus over h2c prior knowledge (curl) answers 200 JSON", async () => {
    const r = await curl(["--http2-prior-knowledge"], "{}");
    expect(r.version).toBe("2");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ version: expect.stringMatching(/^periscope /) });
  });

  test("listen - grpc-js ServerStatus works on the same port", async () => {
    const def = protoLoader.loadSync("observer/observer.proto", {
      includeDirs: [PROTO_ROOT],
      longs: String,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      observer: {
        Observer: new (
          addr: string,
          creds: grpc.ChannelCredentials,
        ) => grpc.Client & {
          ServerStatus(
            req: object,
            cb: (err: grpc.ServiceError | null, res: { version: string }) => void,
          ): void;
        };
      };
    };
    const client = new pkg.observer.Observer(
      `127.0.0.1:${observer.port}`,
      grpc.credentials.createInsecure(),
    );
    try {
      const res = await new Promise<{ version: string }>((resolve, reject) =>
        client.ServerStatus({}, (err, r) => (err ? reject(err) : resolve(r))),
      );
      expect(res.version).toMatch(/^periscope /);
    } finally {
      client.close();
    }
  });

  test("listen - gRPC-Web over HTTP/1.1 ends with grpc-status 0 in the trailer frame", async () => {
    const res = await fetch(`${observer.url}${STATUS_PATH}`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: new Uint8Array([0, 0, 0, 0, 0]), // one empty message
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("hubble-server-version")).toMatch(/^\d+\.\d+\.\d+/);
    const body = new Uint8Array(await res.arrayBuffer());
    // Walk the frames: data (flag 0) then trailers (flag 0x80).
    let at = 0;
    let trailers = "";
    while (at + 5 <= body.length) {
      const len = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
      if ((body[at] ?? 0) & 0x80) {
        trailers = new TextDecoder().decode(body.subarray(at + 5, at + 5 + len));
      }
      at += 5 + len;
    }
    expect(trailers).toMatch(/grpc-status:\s*0/);
  });

  test("listen - the request size cap applies over HTTP/1.1", async () => {
    const big = JSON.stringify({ pad: "x".repeat(MAX_REQUEST_BYTES * 2) });
    const r = await curl(["--http1.1"], big);
    expect(r.version).toBe("1.1");
    expect(r.status).not.toBe(200);
    expect(JSON.parse(r.body).code).toBe("resource_exhausted");
    const ok = await curl(["--http1.1"], "{}"); // the server still answers
    expect(ok.status).toBe(200);
  });

  test("listen - stop does not wait out the grace period for idle HTTP/1.1 and unsniffed connections", async () => {
    const config = parseConfig(["--listen-address", "127.0.0.1:0", "--nats-url", nats.url], {
      PERISCOPE_NODE_NAME: "listen-stop-test",
    });
    const grace = 5000;
    const o = await startObserver(config, {
      log: createLogger("observer", "silent"),
      noOps: true,
      shutdownGraceMs: grace,
    });
    const { connect } = await import("node:net");
    const open = (): Promise<import("node:net").Socket> =>
      new Promise((resolve, reject) => {
        const s = connect(o.port, "127.0.0.1", () => resolve(s));
        s.on("error", reject);
      });
    // A keep-alive HTTP/1.1 connection with one answered request, and one that sent 3 bytes.
    const idle = await open();
    const answered = new Promise<string>((resolve) => {
      let got = "";
      idle.on("data", (c: Buffer) => {
        got += c.toString();
        if (got.includes("\r\n\r\n")) resolve(got);
      });
    });
    idle.write(
      `POST ${STATUS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        "Content-Length: 2\r\n\r\n{}",
    );
    expect(await answered).toStartWith("HTTP/1.1 200");
    // A Connect follow stream over HTTP/1.1, open while stopping: it ends, then its connection.
    const env = (json: string): Uint8Array => {
      const msg = new TextEncoder().encode(json);
      const out = new Uint8Array(5 + msg.length);
      new DataView(out.buffer).setUint32(1, msg.length);
      out.set(msg, 5);
      return out;
    };
    const follow = fetch(`${o.url}/observer.Observer/GetFlows`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: env('{"follow":true}'),
    }).then(async (r) => ({ status: r.status, body: new Uint8Array(await r.arrayBuffer()) }));
    await waitFor(async () => (await o.metrics.activeStreams.get()).values[0]?.value === 1);
    const partial = await open();
    partial.write("PRI");
    const closed = (s: import("node:net").Socket) =>
      new Promise<void>((resolve) => {
        if (s.destroyed) resolve();
        else s.on("close", () => resolve());
      });
    const t0 = performance.now();
    await o.stop();
    const took = performance.now() - t0;
    await Promise.all([closed(idle), closed(partial)]);
    // The stream's last frame is the Connect end-of-stream frame (flag 2), without error.
    const { status, body } = await follow;
    expect(status).toBe(200);
    expect(body[0]).toBe(2);
    expect(new TextDecoder().decode(body.subarray(5))).toBe("{}");
    expect(took).toBeLessThan(grace / 2);
  });
});
