import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats } from "@periscope/testing";
import { parseConfig } from "../../services/observer/src/config.ts";
import { StoredEvent } from "../../services/observer/src/event.ts";
import { type RunningObserver, startObserver } from "../../services/observer/src/server.ts";
import { runCli } from "./main.ts";
import { varied } from "./varied-flows.ts";

const STORED = 700;
let dir = "";
let nats: LocalNats;
let observer: RunningObserver;
let server = "";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "periscope-rawflows-"));
  nats = await startLocalNats({});
  server = `unix://${join(dir, "observer.sock")}`;
  observer = await startObserver(
    parseConfig(["--listen-address", server, "--nats-url", nats.url], {
      PERISCOPE_NODE_NAME: "rawflows-observer",
    }),
    { log: createLogger("observer", "silent"), noOps: true, shutdownGraceMs: 200 },
  );
  for (let i = 0; i < STORED; i++) observer.store.add(StoredEvent.fromResponse(varied(i)));
});

afterAll(async () => {
  await observer?.stop();
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `periscope observe` in this process; PERISCOPE_OBSERVE_DECODE as given. */
async function observe(
  args: string[],
  decode: "full" | "lazy",
  signal = new AbortController().signal,
  onLine?: (n: number) => void,
): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const saved = process.env.PERISCOPE_OBSERVE_DECODE;
  if (decode === "full") process.env.PERISCOPE_OBSERVE_DECODE = "full";
  else delete process.env.PERISCOPE_OBSERVE_DECODE;
  try {
    const code = await runCli(["observe", "--server", server, ...args], {
      out: (l) => {
        out.push(l);
        onLine?.(out.length);
      },
      err: (l) => err.push(l),
      signal,
      server: "localhost:1",
    });
    return { code, out, err };
  } finally {
    if (saved === undefined) delete process.env.PERISCOPE_OBSERVE_DECODE;
    else process.env.PERISCOPE_OBSERVE_DECODE = saved;
  }
}

describe("observe over the raw stream", () => {
  test("compact output is byte-identical to the Connect client's, over a unix socket", async () => {
    for (const flags of [[], ["--print-node-name", "--print-policy-names", "--color", "always"]]) {
      const args = ["--last", String(STORED), "-o", "compact", ...flags];
      const full = await observe(args, "full");
      const lazy = await observe(args, "lazy");
      expect(full.code).toBe(0);
      expect(full.out.length).toBeGreaterThan(STORED * 0.9);
      expect(full.out.some((l) => l.includes("EVENTS LOST"))).toBe(true);
      expect(full.out.some((l) => l.includes("dns-response"))).toBe(true);
      expect(lazy).toEqual(full);
    }
  }, 60_000);

  test("a follow stream ends with exit 0 when the signal aborts it", async () => {
    const ac = new AbortController();
    const run = observe(["--last", "5", "-f"], "lazy", ac.signal, (n) => {
      if (n === 5) ac.abort();
    });
    const r = await run;
    expect(r).toEqual({ code: 0, out: expect.any(Array), err: [] });
    expect(r.out.length).toBe(5);
  }, 30_000);
});

describe("raw stream errors", () => {
  let h2: http2.Http2Server;
  let port = 0;
  beforeAll(async () => {
    h2 = http2.createServer();
    h2.on("stream", (stream: http2.ServerHttp2Stream) => {
      stream.respond(
        {
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": "7",
          "grpc-message": encodeURIComponent("nope: not for you"),
        },
        { endStream: true },
      );
    });
    await new Promise<void>((resolve) => h2.listen(0, "127.0.0.1", resolve));
    port = (h2.address() as { port: number }).port;
  });
  afterAll(() => {
    h2.close();
  });

  test("the server's gRPC status is reported with its code and message", async () => {
    server = `127.0.0.1:${port}`;
    try {
      const r = await observe(["--last", "3"], "lazy");
      expect(r.code).toBe(1);
      expect(r.err.join("\n")).toContain("permission_denied: nope: not for you");
    } finally {
      server = `unix://${join(dir, "observer.sock")}`;
    }
  });

  test("no server at the address is an unavailable error", async () => {
    server = "127.0.0.1:1";
    try {
      const r = await observe(["--last", "3"], "lazy");
      expect(r.code).toBe(1);
      expect(r.err.join("\n")).toMatch(/unavailable/);
    } finally {
      server = `unix://${join(dir, "observer.sock")}`;
    }
  });
});
