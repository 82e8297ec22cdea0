import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats } from "@periscope/testing";
import { parseConfig } from "./config.ts";
import { type RunningObserver, startObserver } from "./server.ts";
import { ASSET_CACHE, PAGE_CACHE } from "./ui-static.ts";

let nats: LocalNats;
let observer: RunningObserver;
let bare: RunningObserver;
let dir: string;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw HTTP/1.1 request (the path is sent as given, no normalisation). */
function get(port: number, path: string, method = "GET", body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method,
        headers: body ? { "Content-Type": "application/json" } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "periscope-ui-"));
  const dist = join(dir, "dist");
  mkdirSync(join(dist, "assets"), { recursive: true });
  writeFileSync(join(dist, "index.html"), "<!doctype html><title>Periscope</title>");
  writeFileSync(join(dist, "assets", "main-abc123.js"), "console.log(1)");
  writeFileSync(join(dist, "assets", "main-abc123.css"), "body{}");
  writeFileSync(join(dir, "secret.txt"), "not for the web");
  symlinkSync(join(dir, "secret.txt"), join(dist, "assets", "link.txt"));
  nats = await startLocalNats({});
  const config = (name: string) =>
    parseConfig(["--listen-address", "127.0.0.1:0", "--nats-url", nats.url], {
      PERISCOPE_NODE_NAME: name,
    });
  const log = createLogger("observer", "silent");
  observer = await startObserver(config("ui-test"), { log, noOps: true, uiDir: dist });
  bare = await startObserver(config("ui-test-bare"), {
    log,
    noOps: true,
    uiDir: join(dir, "not-built"),
  });
});

afterAll(async () => {
  await observer?.stop();
  await bare?.stop();
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("observer web UI", () => {
  test("ui - GET / answers the page as html, revalidated on every load, query ignored", async () => {
    for (const path of ["/", "/?filter=verdict%3DDROPPED", "/index.html"]) {
      const r = await get(observer.port, path);
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(r.headers["cache-control"]).toBe(PAGE_CACHE);
      expect(r.body).toContain("<title>Periscope</title>");
    }
  });

  test("ui - assets have their content type and long-lived caching; HEAD has no body", async () => {
    const js = await get(observer.port, "/assets/main-abc123.js");
    expect(js.status).toBe(200);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(js.headers["cache-control"]).toBe(ASSET_CACHE);
    expect(js.headers["x-content-type-options"]).toBe("nosniff");
    expect(js.body).toBe("console.log(1)");
    const css = await get(observer.port, "/assets/main-abc123.css");
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
    const head = await get(observer.port, "/assets/main-abc123.js", "HEAD");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe("14");
    expect(head.body).toBe("");
  });

  test("ui - a missing asset is 404, a missing build says to run scripts/build.sh", async () => {
    const r = await get(observer.port, "/assets/nope-1.js");
    expect(r.status).toBe(404);
    expect(r.body).toContain("no such asset: /assets/nope-1.js");
    const page = await get(bare.port, "/");
    expect(page.status).toBe(404);
    expect(page.body).toContain("UI not built: run scripts/build.sh");
  });

  test.each([
    "/assets/../index.html",
    "/assets/../../secret.txt",
    "/assets/..%2f..%2fsecret.txt",
    "/assets/%2e%2e%2fsecret.txt",
    "/assets/..%5csecret.txt",
    "/assets/.hidden",
    "/assets/a%00.js",
    "/assets/%E0%A4%A",
    "/assets/link.txt",
  ])("ui - %s is refused with 400, nothing outside the assets is read", async (path) => {
    const r = await get(observer.port, path);
    expect(r.status).toBe(400);
    expect(r.body).toContain("bad asset path");
    expect(r.body).not.toContain("not for the web");
  });

  test("ui - other methods get 405; the API on the same port still answers", async () => {
    const post = await get(observer.port, "/", "POST", "{}");
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD");
    const status = await get(observer.port, "/observer.Observer/ServerStatus", "POST", "{}");
    expect(status.status).toBe(200);
    expect(JSON.parse(status.body)).toHaveProperty("version");
  });

  test("ui - refused paths are counted as errors", async () => {
    const before = await observer.metrics.errors.get();
    const n = (kind: string, v: typeof before) =>
      v.values.find((x) => x.labels.kind === kind)?.value ?? 0;
    const was = n("ui_bad_path", before);
    await get(observer.port, "/assets/..%2fx");
    expect(n("ui_bad_path", await observer.metrics.errors.get())).toBe(was + 1);
  });
});
