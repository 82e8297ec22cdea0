/**
 * The workspace dependency graph, checked against the one we mean to have:
 * every package.json lists only allowed workspaces, every import of another
 * workspace (by name or by a relative path into it) is declared, and the
 * allowed graph itself has no cycles.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

const ROOT = resolve(import.meta.dir, "..");

/**
 * Workspaces each workspace may depend on. Leaves first: `model` is the
 * shared vocabulary, `proto` generated code, `config` settings parsing.
 * Transport (`bus`) does not know decoding (`flow`); services never import
 * each other.
 */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  model: [],
  proto: [],
  config: [],
  telemetry: ["config"],
  wire: ["model", "proto", "testing"],
  flow: ["model", "proto", "testing", "wire"],
  bus: ["model", "proto", "telemetry", "testing"],
  bpf: ["model", "testing", "wire"],
  policy: ["flow", "model", "testing", "wire"],
  devstack: ["model"],
  testing: ["devstack", "model"],
  netflow: ["devstack", "telemetry", "testing"],
  collector: [
    "bpf",
    "bus",
    "config",
    "model",
    "netflow",
    "policy",
    "proto",
    "telemetry",
    "testing",
    "wire",
  ],
  enricher: ["bus", "config", "flow", "model", "proto", "telemetry", "testing", "wire"],
  observer: ["bus", "config", "flow", "model", "proto", "telemetry", "testing", "wire"],
  recorder: ["bus", "config", "model", "proto", "telemetry", "testing"],
  cli: ["bus", "flow", "model", "observer", "policy", "proto", "telemetry", "testing", "wire"],
  ui: ["bus", "observer", "proto", "telemetry", "testing"],
};

/** Test files may reuse the bench's traffic mixes and captures (bench/ is not a workspace). */
const BENCH_FOR_TESTS = "<outside workspaces: bench/";

/** Workspaces only test code may use: listed under devDependencies, never dependencies. */
const TEST_ONLY = new Set(["testing"]);

/** Files only tests and development tools load: they may use devDependencies as well. */
const TEST_FILE =
  /(\.test\.ts|\/testing\.ts|\/test-helpers\.ts|\/(testing|testdata|dev)\/[^/]+\.ts)$/;

interface Workspace {
  /** Short name: `@periscope/<name>`. */
  readonly name: string;
  readonly dir: string;
  readonly deps: ReadonlySet<string>;
  readonly devDeps: ReadonlySet<string>;
}

function periscopeNames(deps: unknown): Set<string> {
  return new Set(
    Object.keys((deps ?? {}) as Record<string, string>)
      .filter((d) => d.startsWith("@periscope/"))
      .map((d) => d.slice("@periscope/".length)),
  );
}

function loadWorkspaces(): Workspace[] {
  const rootPkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    workspaces: string[];
  };
  const dirs = rootPkg.workspaces.flatMap((pattern) =>
    pattern.endsWith("/*")
      ? readdirSync(join(ROOT, pattern.slice(0, -2))).map((d) =>
          join(ROOT, pattern.slice(0, -2), d),
        )
      : [join(ROOT, pattern)],
  );
  return dirs
    .filter((dir) => statSync(join(dir, "package.json"), { throwIfNoEntry: false })?.isFile())
    .map((dir) => {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name: string;
        dependencies?: Record<string, string>;
        devDependencies?: Record<string, string>;
      };
      return {
        name: pkg.name.replace(/^@periscope\//, ""),
        dir,
        deps: periscopeNames(pkg.dependencies),
        devDeps: periscopeNames(pkg.devDependencies),
      };
    });
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.split(sep).includes("node_modules"))
    .map((f) => join(dir, f));
}

const IMPORT = /(?:from|import|export \*(?: as \w+)? from)\s*\(?\s*"([^"]+)"/g;

/** Workspaces one file imports (by package name or by a relative path into another workspace). */
function importedWorkspaces(file: string, self: Workspace, all: readonly Workspace[]): string[] {
  const out: string[] = [];
  for (const m of readFileSync(file, "utf8").matchAll(IMPORT)) {
    const spec = m[1] ?? "";
    const named = /^@periscope\/([a-z-]+)/.exec(spec);
    if (named?.[1] !== undefined) {
      if (named[1] !== self.name) out.push(named[1]);
      continue;
    }
    if (!spec.startsWith(".")) continue;
    const target = resolve(dirname(file), spec);
    const owner = all.find((w) => target === w.dir || target.startsWith(w.dir + sep));
    if (owner === undefined) out.push(`<outside workspaces: ${relative(ROOT, target)}>`);
    else if (owner !== self) out.push(owner.name);
  }
  return out;
}

const workspaces = loadWorkspaces();

describe("dependency graph", () => {
  test("dependency graph - every workspace has an entry in the allowed list", () => {
    expect(workspaces.map((w) => w.name).sort()).toEqual(Object.keys(ALLOWED).sort());
  });

  test("dependency graph - the allowed list has no cycles", () => {
    const state = new Map<string, "visiting" | "done">();
    const visit = (name: string, path: string[]): void => {
      if (state.get(name) === "done") return;
      if (state.get(name) === "visiting") throw new Error(`cycle: ${[...path, name].join(" -> ")}`);
      state.set(name, "visiting");
      for (const dep of ALLOWED[name] ?? []) visit(dep, [...path, name]);
      state.set(name, "done");
    };
    for (const name of Object.keys(ALLOWED)) visit(name, []);
  });

  test.each(workspaces.map((w) => [w.name, w] as const))(
    "dependency graph - %s declares only allowed workspaces",
    (_name, w) => {
      const allowed = new Set(ALLOWED[w.name] ?? []);
      const declared = [...w.deps, ...w.devDeps];
      expect(declared.filter((d) => !allowed.has(d))).toEqual([]);
      expect([...w.deps].filter((d) => TEST_ONLY.has(d))).toEqual([]);
    },
  );

  test.each(workspaces.map((w) => [w.name, w] as const))(
    "dependency graph - %s imports only workspaces its package.json declares",
    (_name, w) => {
      const undeclared: string[] = [];
      for (const file of sourceFiles(w.dir)) {
        const isTest = TEST_FILE.test(file);
        for (const dep of importedWorkspaces(file, w, workspaces)) {
          if (isTest && dep.startsWith(BENCH_FOR_TESTS)) continue;
          if (!(w.deps.has(dep) || (isTest && w.devDeps.has(dep)))) {
            undeclared.push(`${relative(ROOT, file)} -> ${dep}`);
          }
        }
      }
      expect(undeclared).toEqual([]);
    },
  );
});
