/**
 * Serves the web UI (ui/dist, built by scripts/build.sh) on the observer's API port, so the
 * page and the Connect API share one origin: `GET /` (and `/index.html`) answers the page,
 * `GET /assets/<file>` the content-hashed bundle files. Everything else is left to the API.
 */
import { readFile, realpath, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import type * as http2 from "node:http2";
import { extname, join, sep } from "node:path";

/** Where scripts/build.sh puts the UI. */
export const DEFAULT_UI_DIR = join(import.meta.dir, "../../../ui/dist");

/** Content types of the files the UI build writes. */
export const UI_CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

/** Assets carry a content hash in their name: cached for a year. */
export const ASSET_CACHE = "public, max-age=31536000, immutable";
/** The page itself is revalidated on every load, so a new build is picked up. */
export const PAGE_CACHE = "no-cache";

type Req = IncomingMessage | http2.Http2ServerRequest;
type Res = ServerResponse | http2.Http2ServerResponse;

/** Counts of UI requests by outcome, for the caller's metrics. */
export type UiOutcome = "ok" | "not_found" | "bad_path" | "method" | "error";

/** Options for {@link uiStatic}. */
export interface UiStaticOptions {
  /** Built UI directory (index.html + assets/). Default {@link DEFAULT_UI_DIR}. */
  dir?: string;
  /** Called once per UI request with its outcome. */
  onRequest?: (outcome: UiOutcome) => void;
}

/** Whether `path` (no query) is one the UI answers. */
export function isUiPath(path: string): boolean {
  return path === "/" || path === "/index.html" || path.startsWith("/assets/");
}

function send(
  res: Res,
  status: number,
  headers: Record<string, string | number>,
  body?: Buffer | string,
): void {
  const r = res as ServerResponse;
  r.statusCode = status;
  for (const [k, v] of Object.entries(headers)) r.setHeader(k, v);
  r.setHeader("X-Content-Type-Options", "nosniff");
  r.end(body);
}

function plain(res: Res, status: number, text: string, head: boolean): void {
  send(
    res,
    status,
    { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" },
    head ? undefined : `${text}\n`,
  );
}

/**
 * Returns a request hook: it answers UI requests and returns true, or returns false and
 * leaves the request to the API. A path that tries to leave the assets directory
 * (`..`, encoded slashes or NULs, symlinks out) gets 400; a missing file 404; a missing
 * build 404 saying to run scripts/build.sh.
 */
export function uiStatic(opts: UiStaticOptions = {}): (req: Req, res: Res) => boolean {
  const dir = opts.dir ?? DEFAULT_UI_DIR;
  const assets = join(dir, "assets");
  const count = opts.onRequest ?? (() => {});
  return (req, res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const rawPath = q >= 0 ? url.slice(0, q) : url;
    if (!isUiPath(rawPath)) return false;
    const method = req.method ?? "GET";
    const head = method === "HEAD";
    if (method !== "GET" && !head) {
      count("method");
      send(
        res,
        405,
        { Allow: "GET, HEAD", "Content-Type": "text/plain; charset=utf-8" },
        "method not allowed\n",
      );
      return true;
    }
    let file: string;
    if (rawPath === "/" || rawPath === "/index.html") {
      file = join(dir, "index.html");
    } else {
      let name: string;
      try {
        name = decodeURIComponent(rawPath.slice("/assets/".length));
      } catch {
        count("bad_path");
        plain(res, 400, `bad asset path: ${rawPath}`, head);
        return true;
      }
      if (
        name === "" ||
        name.includes("/") ||
        name.includes("\\") ||
        name.includes("\0") ||
        name.startsWith(".")
      ) {
        count("bad_path");
        plain(res, 400, `bad asset path: ${rawPath}`, head);
        return true;
      }
      file = join(assets, name);
    }
    const page = !rawPath.startsWith("/assets/");
    serveFile(file, assets, page)
      .then((r) => {
        if (r === undefined) {
          count("not_found");
          plain(
            res,
            404,
            page
              ? `UI not built: run scripts/build.sh (looked for ${file})`
              : `no such asset: ${rawPath}`,
            head,
          );
          return;
        }
        if (r === "outside") {
          count("bad_path");
          plain(res, 400, `bad asset path: ${rawPath}`, head);
          return;
        }
        count("ok");
        const type = UI_CONTENT_TYPES[extname(file)] ?? "application/octet-stream";
        send(
          res,
          200,
          {
            "Content-Type": type,
            "Content-Length": r.length,
            "Cache-Control": page ? PAGE_CACHE : ASSET_CACHE,
          },
          head ? undefined : r,
        );
      })
      .catch(() => {
        count("error");
        plain(res, 500, "UI file could not be read", head);
      });
    return true;
  };
}

/** The file's bytes; undefined when missing; "outside" when it resolves out of `assets`. */
async function serveFile(
  file: string,
  assets: string,
  page: boolean,
): Promise<Buffer | "outside" | undefined> {
  let real: string;
  try {
    real = await realpath(file);
    if (!(await stat(real)).isFile()) return undefined;
  } catch {
    return undefined;
  }
  if (!page) {
    const root = await realpath(assets).catch(() => assets);
    if (!real.startsWith(root + sep)) return "outside";
  }
  return readFile(real);
}
