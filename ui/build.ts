/**
 * Builds the UI into ui/dist: index.html plus content-hashed files under dist/assets
 * (served with long-lived caching; index.html is not cached): the page (main-*.js/.css)
 * and the stream worker (worker-*.js, named to the page in a meta tag). Prints the sizes.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";

const root = import.meta.dir;
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "assets"), { recursive: true });

const result = await Bun.build({
  entrypoints: [join(root, "src/main.tsx"), join(root, "src/worker.ts")],
  outdir: join(dist, "assets"),
  target: "browser",
  minify: true,
  naming: {
    entry: "[name]-[hash].[ext]",
    asset: "[name]-[hash].[ext]",
    chunk: "[name]-[hash].[ext]",
  },
  define: { "process.env.NODE_ENV": '"production"' },
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
let js = "";
let css = "";
let worker = "";
for (const out of result.outputs) {
  const name = basename(out.path);
  if (name.startsWith("worker-") && name.endsWith(".js")) worker = name;
  else if (name.endsWith(".js")) js = name;
  else if (name.endsWith(".css")) css = name;
  const bytes = readFileSync(out.path);
  console.error(`ui/dist/assets/${name}: ${bytes.length} bytes, ${gzipSync(bytes).length} gzipped`);
}
if (!js || !css || !worker) {
  throw new Error("ui build: expected main .js, main .css and worker .js outputs");
}
const html = readFileSync(join(root, "index.html"), "utf8")
  .replace("%JS%", js)
  .replace("%CSS%", css)
  .replace("%WORKER%", worker);
writeFileSync(join(dist, "index.html"), html);
