/**
 * Builds the UI into ui/dist: index.html plus content-hashed files under dist/assets
 * (served with long-lived caching; index.html is not cached). Prints the bundle sizes.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";

const root = import.meta.dir;
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "assets"), { recursive: true });

const result = await Bun.build({
  entrypoints: [join(root, "src/main.tsx")],
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
for (const out of result.outputs) {
  const name = basename(out.path);
  if (name.endsWith(".js")) js = name;
  else if (name.endsWith(".css")) css = name;
  const bytes = readFileSync(out.path);
  console.error(`ui/dist/assets/${name}: ${bytes.length} bytes, ${gzipSync(bytes).length} gzipped`);
}
if (!js || !css) throw new Error("ui build: expected one .js and one .css output");
const html = readFileSync(join(root, "index.html"), "utf8")
  .replace("%JS%", js)
  .replace("%CSS%", css);
writeFileSync(join(dist, "index.html"), html);
