/**
 * Observer access end to end: TLS and mutual TLS with certificates made here by openssl,
 * basic and bearer credentials, a unix socket; a plain grpc-js client, curl and the CLI.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats } from "@periscope/testing";
import { runCli } from "../cli/src/main.ts";
import { parseConfig } from "../services/observer/src/config.ts";
import { type RunningObserver, startObserver } from "../services/observer/src/server.ts";
import { PROTO_ROOT, testFlowEvent } from "../services/observer/src/testing.ts";

const ROOT = join(import.meta.dir, "..");
const CHILD_PATH = `${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`;
const BEARER = "s3cr3t-token-for-tests";

let dir = "";
let nats: LocalNats;
let secure: RunningObserver;
let local: RunningObserver;
let sock = "";

function openssl(...args: string[]): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.toString()}`);
}

/** A self-signed CA: `name`.crt and `name`.key. */
function makeCa(name: string): void {
  openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "1",
    "-subj",
    `/CN=${name}`,
  );
}

/** A certificate `leaf`.crt/.key signed by CA `ca`, with x509v3 extension line `ext`. */
function makeLeaf(ca: string, leaf: string, cn: string, ext: string): void {
  writeFileSync(join(dir, `${leaf}.ext`), `${ext}\n`);
  openssl(
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${leaf}.key`,
    "-out",
    `${leaf}.csr`,
    "-subj",
    `/CN=${cn}`,
  );
  openssl(
    "x509",
    "-req",
    "-in",
    `${leaf}.csr`,
    "-CA",
    `${ca}.crt`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-out",
    `${leaf}.crt`,
    "-days",
    "1",
    "-extfile",
    `${leaf}.ext`,
  );
}

const f = (name: string): string => join(dir, name);
const read = (name: string): Buffer => readFileSync(f(name));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "periscope-access-"));
  makeCa("ca");
  makeCa("other-ca");
  makeLeaf("ca", "server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1");
  makeLeaf("ca", "client", "client", "extendedKeyUsage=clientAuth");
  makeLeaf("other-ca", "stranger", "stranger", "extendedKeyUsage=clientAuth");
  const hash = (await Bun.password.hash("bcrypt-pw", { algorithm: "bcrypt", cost: 4 })).replace(
    /^\$2b\$/,
    "$2y$", // as htpasswd -B writes it
  );
  writeFileSync(f("users"), `# users\nalice:${hash}\nbob:plain-pw\n`);
  writeFileSync(f("tokens"), `${BEARER}\n`);
  nats = await startLocalNats({});
  const log = createLogger("observer", "silent");
  secure = await startObserver(
    parseConfig(
      [
        "--listen-address",
        "127.0.0.1:0",
        "--nats-url",
        nats.url,
        "--tls-cert-file",
        f("server.crt"),
        "--tls-key-file",
        f("server.key"),
        "--tls-client-ca-files",
        f("ca.crt"),
        "--basic-auth-file",
        f("users"),
        "--ops-addr",
        "127.0.0.1:0",
      ],
      { PERISCOPE_NODE_NAME: "access-secure", PERISCOPE_BEARER_TOKEN_FILE: f("tokens") },
    ),
    { log, shutdownGraceMs: 200 },
  );
  sock = f("observer.sock");
  local = await startObserver(
    parseConfig(["--listen-address", `unix://${sock}`, "--nats-url", nats.url], {
      PERISCOPE_NODE_NAME: "access-local",
    }),
    { log, noOps: true, shutdownGraceMs: 200 },
  );
  for (const o of [secure, local]) {
    for (let i = 0; i < 3; i++) {
      o.store.add(testFlowEvent({ timeMs: Date.now() - 1000 + i, src: `10.9.0.${i + 1}` }));
    }
  }
});

afterAll(async () => {
  await secure?.stop();
  await local?.stop();
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;
interface ObserverStub extends grpc.Client {
  ServerStatus(req: object, md: grpc.Metadata, cb: Callback<{ num_flows: string }>): void;
  GetFlows(req: object, md: grpc.Metadata): grpc.ClientReadableStream<{ flow?: object }>;
}
interface HealthStub extends grpc.Client {
  Check(req: object, cb: Callback<{ status: string }>): void;
}

const loaded = grpc.loadPackageDefinition(
  protoLoader.loadSync(["observer/observer.proto", "grpc/health/v1/health.proto"], {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
  }),
) as unknown as {
  observer: { Observer: new (a: string, c: grpc.ChannelCredentials) => ObserverStub };
  grpc: { health: { v1: { Health: new (a: string, c: grpc.ChannelCredentials) => HealthStub } } };
};

/** TLS credentials trusting `ca`, presenting client certificate `leaf` when given. */
function creds(ca: string, leaf?: string): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(
    read(`${ca}.crt`),
    leaf ? read(`${leaf}.key`) : null,
    leaf ? read(`${leaf}.crt`) : null,
  );
}

function metadata(authorization?: string): grpc.Metadata {
  const md = new grpc.Metadata();
  if (authorization !== undefined) md.set("authorization", authorization);
  return md;
}

const basic = (user: string, pw: string): string =>
  `Basic ${Buffer.from(`${user}:${pw}`).toString("base64")}`;

/** ServerStatus over grpc-js; resolves with the flow count or the error's code and details. */
async function status(
  c: grpc.ChannelCredentials,
  authorization?: string,
): Promise<{ flows?: string; code?: grpc.status; details?: string }> {
  const client = new loaded.observer.Observer(`localhost:${secure.port}`, c);
  try {
    return await new Promise((resolve) =>
      client.ServerStatus({}, metadata(authorization), (err, res) =>
        resolve(err ? { code: err.code, details: err.details } : { flows: res.num_flows }),
      ),
    );
  } finally {
    client.close();
  }
}

describe("observer access", () => {
  test("access - grpc-js with the CA and a client certificate gets flows", async () => {
    const client = new loaded.observer.Observer(`localhost:${secure.port}`, creds("ca", "client"));
    try {
      const got: object[] = [];
      await new Promise<void>((resolve, reject) => {
        const call = client.GetFlows({ number: 3 }, metadata(basic("bob", "plain-pw")));
        call.on("data", (m: { flow?: object }) => m.flow && got.push(m.flow));
        call.on("error", reject);
        call.on("end", resolve);
      });
      expect(got.length).toBe(3);
    } finally {
      client.close();
    }
  });

  test("access - no client certificate, a stranger's, or an untrusted server are refused", async () => {
    const before =
      (await secure.metrics.errors.get()).values.find((v) => v.labels.kind === "tls_handshake")
        ?.value ?? 0;
    const auth = basic("bob", "plain-pw");
    for (const c of [creds("ca"), creds("ca", "stranger"), creds("other-ca", "client")]) {
      const r = await status(c, auth);
      expect(r.flows).toBeUndefined();
      expect(r.code).toBe(grpc.status.UNAVAILABLE);
    }
    const after =
      (await secure.metrics.errors.get()).values.find((v) => v.labels.kind === "tls_handshake")
        ?.value ?? 0;
    expect(after).toBeGreaterThanOrEqual(before + 2); // the server saw the two bad client certs
  });

  test("access - basic auth right (plain and bcrypt), wrong, missing; bearer right and wrong", async () => {
    const c = creds("ca", "client");
    expect(await status(c, basic("bob", "plain-pw"))).toEqual({ flows: "3" });
    expect(await status(c, basic("alice", "bcrypt-pw"))).toEqual({ flows: "3" });
    expect(await status(c, basic("alice", "bcrypt-pw"))).toEqual({ flows: "3" }); // cached
    expect(await status(c, `Bearer ${BEARER}`)).toEqual({ flows: "3" });
    expect(await status(c, basic("alice", "plain-pw"))).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      details: 'invalid username or password for user "alice"',
    });
    expect(await status(c, basic("mallory", "x"))).toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
    });
    expect(await status(c)).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      details: "missing credentials: this server requires Basic or Bearer authorization",
    });
    expect(await status(c, "Bearer nope")).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      details: "invalid bearer token",
    });
    expect(await status(c, "Digest x")).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });

  test("access - health answers without credentials; failures are counted by reason", async () => {
    const health = new loaded.grpc.health.v1.Health(
      `localhost:${secure.port}`,
      creds("ca", "client"),
    );
    try {
      const res = await new Promise<{ status: string }>((resolve, reject) =>
        health.Check({ service: "" }, (err, r) => (err ? reject(err) : resolve(r))),
      );
      expect(res.status).toBe("SERVING");
    } finally {
      health.close();
    }
    // The refusals of the previous test, by reason.
    const text = await (await fetch(`http://127.0.0.1:${secure.opsPort}/metrics`)).text();
    const count = (reason: string): number =>
      Number(
        new RegExp(
          `^periscope_observer_auth_failures_total\\{reason="${reason}"\\} (\\d+)$`,
          "m",
        ).exec(text)?.[1] ?? 0,
      );
    expect(count("invalid")).toBeGreaterThanOrEqual(3);
    expect(count("missing")).toBeGreaterThanOrEqual(1);
    expect(count("malformed")).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(
      /periscope_observer_requests_total\{[^}]*code="unauthenticated"[^}]*\} [1-9]/,
    );
  });

  test("access - Connect JSON over HTTP/1.1 and TLS with curl: 401 without credentials", async () => {
    const run = async (...extra: string[]) => {
      const p = Bun.spawn(
        [
          "curl",
          "-sS",
          "--http1.1",
          "--cacert",
          f("ca.crt"),
          "--cert",
          f("client.crt"),
          "--key",
          f("client.key"),
          "-H",
          "Content-Type: application/json",
          "-d",
          "{}",
          "-w",
          "\n%{http_version} %{http_code}",
          ...extra,
          `https://localhost:${secure.port}/observer.Observer/ServerStatus`,
        ],
        { stdout: "pipe", stderr: "pipe" },
      );
      const [out] = await Promise.all([new Response(p.stdout).text(), p.exited]);
      return out;
    };
    const ok = await run("-u", "bob:plain-pw");
    expect(ok).toContain('"numFlows":"3"');
    expect(ok.endsWith("1.1 200")).toBe(true);
    const refused = await run();
    expect(refused).toContain('"code":"unauthenticated"');
    expect(refused.endsWith("1.1 401")).toBe(true);
  });

  test("access - the CLI over TLS with flags and, as a process, with PERISCOPE_* variables", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = {
      out: (l: string) => out.push(l),
      err: (l: string) => err.push(l),
      signal: new AbortController().signal,
      server: `localhost:${secure.port}`,
    };
    const tlsFlags = [
      "--tls",
      `--tls-ca-cert-files=${f("ca.crt")}`,
      "--tls-client-cert-file",
      f("client.crt"),
      "--tls-client-key-file",
      f("client.key"),
    ];
    expect(
      await runCli(
        [
          "status",
          ...tlsFlags,
          "--basic-auth-username",
          "alice",
          "--basic-auth-password",
          "bcrypt-pw",
        ],
        io,
      ),
    ).toBe(0);
    expect(out.join("\n")).toContain("Current/Max Flows: 3/");
    expect(
      await runCli(
        ["status", ...tlsFlags, "--basic-auth-username", "alice", "--basic-auth-password", "no"],
        io,
      ),
    ).toBe(1);
    expect(err.join("\n")).toContain(
      'unauthenticated: invalid username or password for user "alice"',
    );
    expect(await runCli(["status", ...tlsFlags.slice(0, 2)], io)).toBe(1); // no client cert

    const proc = Bun.spawn([join(ROOT, "periscope"), "observe", "--last", "3", "-o", "json"], {
      stdout: "pipe",
      stderr: "pipe",
      env: {
        PATH: CHILD_PATH,
        PERISCOPE_SERVER: `localhost:${secure.port}`,
        PERISCOPE_TLS: "true",
        PERISCOPE_TLS_CA_CERT_FILES: f("ca.crt"),
        PERISCOPE_TLS_CLIENT_CERT_FILE: f("client.crt"),
        PERISCOPE_TLS_CLIENT_KEY_FILE: f("client.key"),
        PERISCOPE_BEARER_TOKEN: BEARER,
      },
    });
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(stdout.trim().split("\n").length).toBe(3);
    expect(stdout).toContain("10.9.0.3");
  });

  test("access - unix socket: mode 0660, the CLI observes over it, the file goes on stop", async () => {
    const st = statSync(sock);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    expect(local.url).toBe(`unix://${sock}`);
    const out: string[] = [];
    const io = {
      out: (l: string) => out.push(l),
      err: (l: string) => out.push(`ERR ${l}`),
      signal: new AbortController().signal,
      server: "localhost:1",
    };
    expect(
      await runCli(["observe", "--server", `unix://${sock}`, "--last", "2", "-o", "json"], io),
    ).toBe(0);
    expect(out.length).toBe(2);
    expect(out.join("\n")).toContain("10.9.0.3");
    await local.stop();
    expect(() => statSync(sock)).toThrow();
  });

  test("access - unix socket: a stale file is replaced, a live one refused", async () => {
    const path = f("stale.sock");
    // A socket file whose process is gone, as after kill -9.
    const child = Bun.spawnSync([
      process.execPath,
      "-e",
      `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`,
    ]);
    expect(child.signalCode).toBe("SIGKILL");
    expect(statSync(path).isSocket()).toBe(true);
    const config = parseConfig(["--listen-address", `unix://${path}`, "--nats-url", nats.url], {
      PERISCOPE_NODE_NAME: "access-stale",
    });
    const log = createLogger("observer", "silent");
    const first = await startObserver(config, { log, noOps: true, shutdownGraceMs: 200 });
    try {
      expect(statSync(path).mode & 0o777).toBe(0o660);
      await expect(startObserver(config, { log, noOps: true })).rejects.toThrow(
        `${path}: a server is already listening on this socket`,
      );
      expect(statSync(path).isSocket()).toBe(true); // the refused start left it alone
    } finally {
      await first.stop();
    }
  });
});
