import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Health } from "@periscope/proto";
import { createLogger } from "@periscope/telemetry";
import { type LocalNats, startLocalNats } from "@periscope/testing";
import { parseConfig } from "./config.ts";
import { answerReflection, DescriptorIndex } from "./reflection.ts";
import { type RunningObserver, startObserver } from "./server.ts";

const ROOT = join(import.meta.dir, "../../..");
const PROTO_ROOT = join(ROOT, "proto");
const VERSIONS = ["v1", "v1alpha"] as const;
type Version = (typeof VERSIONS)[number];

/** Requests and responses as proto-loader shapes them (camelCase fields, bytes as Buffer). */
type Request =
  | { fileByFilename: string }
  | { fileContainingSymbol: string }
  | { fileContainingExtension: { containingType: string; extensionNumber: number } }
  | { allExtensionNumbersOfType: string }
  | { listServices: string };
interface Response {
  validHost: string;
  messageResponse: string;
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  allExtensionNumbersResponse?: { baseTypeName: string; extensionNumber: number[] };
  listServicesResponse?: { service: { name: string }[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}
type Stream = grpc.ClientDuplexStream<Request & { host?: string }, Response>;
interface ReflectionClient extends grpc.Client {
  ServerReflectionInfo(): Stream;
}
type ClientCtor = new (addr: string, creds: grpc.ChannelCredentials) => ReflectionClient;

/**
 * A bidi reflection stream that sends one request, waits for its answer, then sends the
 * next; so the server must answer while the request body is still open (full duplex).
 */
class ReflectionSession {
  private readonly queue: Response[] = [];
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;
  private readonly stream: Stream;

  constructor(client: ReflectionClient) {
    this.stream = client.ServerReflectionInfo();
    this.stream.on("data", (r: Response) => {
      this.queue.push(r);
      this.waiter?.();
    });
    this.stream.on("error", (err: Error) => {
      this.failure = err;
      this.waiter?.();
    });
  }

  async ask(req: Request, timeoutMs = 5000): Promise<Response> {
    this.stream.write({ host: "localhost", ...req });
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) throw new Error(`no reflection answer to ${JSON.stringify(req)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const next = this.queue.shift();
    if (next === undefined) throw new Error("reflection queue empty");
    return next;
  }

  /** Half-closes and waits for the server's final status. */
  end(): Promise<grpc.StatusObject> {
    return new Promise((resolve, reject) => {
      this.stream.on("status", resolve);
      this.stream.on("error", reject);
      this.stream.end();
    });
  }
}

let nats: LocalNats;
let observer: RunningObserver;
const clients = new Map<Version, ReflectionClient>();

beforeAll(async () => {
  nats = await startLocalNats({});
  const config = parseConfig(
    ["--listen-address", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--nats-url", nats.url],
    { PERISCOPE_NODE_NAME: "reflection-test" },
  );
  observer = await startObserver(config, { log: createLogger("observer", "silent"), noOps: true });
  for (const version of VERSIONS) {
    const def = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
      includeDirs: [PROTO_ROOT],
      oneofs: true,
      arrays: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { reflection: Record<Version, { ServerReflection: ClientCtor }> };
    };
    const ctor = pkg.grpc.reflection[version].ServerReflection;
    clients.set(version, new ctor(`127.0.0.1:${observer.port}`, grpc.credentials.createInsecure()));
  }
});

afterAll(async () => {
  for (const c of clients.values()) c.close();
  await observer?.stop();
  await nats?.stop();
});

/** Runs `fn` on a fresh stream of `version` and checks the stream then ends with OK. */
async function withSession<T>(version: Version, fn: (s: ReflectionSession) => Promise<T>) {
  const client = clients.get(version);
  if (!client) throw new Error(`no ${version} client`);
  const session = new ReflectionSession(client);
  const out = await fn(session);
  expect((await session.end()).code).toBe(grpc.status.OK);
  return out;
}

function decodeFiles(r: Response): FileDescriptorProto[] {
  expect(r.errorResponse).toBeUndefined();
  const bytes = r.fileDescriptorResponse?.fileDescriptorProto ?? [];
  return bytes.map((b) => fromBinary(FileDescriptorProtoSchema, new Uint8Array(b)));
}

describe.each([...VERSIONS])("reflection %s", (version) => {
  test("reflection - list_services names the eight served services", async () => {
    const r = await withSession(version, (s) => s.ask({ listServices: "" }));
    expect(r.validHost).toBe("localhost");
    expect(r.listServicesResponse?.service.map((x) => x.name).sort()).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "observer.Observer",
      "peer.Peer",
      "periscope.flowstats.v1.FlowStatsService",
      "periscope.telemetry.v1.Telemetry",
      "recorder.Recorder",
    ]);
  });

  test("reflection - observer.Observer comes with every file it needs, and they build a registry", async () => {
    const files = decodeFiles(
      await withSession(version, (s) => s.ask({ fileContainingSymbol: "observer.Observer" })),
    );
    const names = files.map((f) => f.name);
    expect(names[0]).toBe("observer/observer.proto");
    expect([...names].sort()).toEqual([
      "flow/flow.proto",
      "google/protobuf/any.proto",
      "google/protobuf/field_mask.proto",
      "google/protobuf/timestamp.proto",
      "google/protobuf/wrappers.proto",
      "observer/observer.proto",
      "relay/relay.proto",
    ]);
    // Clients resolve imports by name (the answer lists the requested file first).
    const byName = new Map(files.map((f) => [f.name, f]));
    const root = files[0];
    if (root === undefined) throw new Error("no files");
    const registry = createFileRegistry(root, (name) => byName.get(name));
    expect([...registry.files].length).toBe(files.length);
    const svc = registry.getService("observer.Observer");
    expect(svc?.methods.map((m) => m.name)).toContain("GetFlows");
    expect(svc?.method.getFlows?.output.typeName).toBe("observer.GetFlowsResponse");
    expect(registry.getMessage("flow.Flow")?.field.time?.message?.typeName).toBe(
      "google.protobuf.Timestamp",
    );
    // json_name survives the trip (protoc-gen-es strips it, fileDesc restores it).
    const flowIp = files
      .find((f) => f.name === "flow/flow.proto")
      ?.messageType.find((m) => m.name === "Flow")
      ?.field.find((f) => f.name === "IP");
    expect(flowIp?.jsonName).toBe("IP");
  });

  test.each([
    ["observer.Observer.GetFlows", "observer/observer.proto"],
    ["observer.GetFlowsRequest.Experimental", "observer/observer.proto"],
    ["flow.Flow", "flow/flow.proto"],
    ["flow.Flow.time", "flow/flow.proto"],
    ["flow.Tunnel.Protocol", "flow/flow.proto"],
    ["flow.Verdict", "flow/flow.proto"],
    ["flow.FORWARDED", "flow/flow.proto"],
    ["relay.NodeStatusEvent", "relay/relay.proto"],
    ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
    ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
    ["grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto"],
    [
      "grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo",
      "grpc/reflection/v1alpha/reflection.proto",
    ],
  ])("reflection - file_containing_symbol(%p) answers %p first", async (symbol, file) => {
    const files = decodeFiles(
      await withSession(version, (s) => s.ask({ fileContainingSymbol: symbol })),
    );
    expect(files[0]?.name).toBe(file);
  });

  test("reflection - file_by_filename answers the file, then only files not sent yet", async () => {
    const [first, again] = await withSession(version, async (s) => [
      decodeFiles(await s.ask({ fileByFilename: "flow/flow.proto" })).map((f) => f.name),
      decodeFiles(await s.ask({ fileByFilename: "observer/observer.proto" })).map((f) => f.name),
    ]);
    expect(first?.[0]).toBe("flow/flow.proto");
    expect(first).toContain("google/protobuf/timestamp.proto");
    expect([...(again ?? [])].sort()).toEqual([
      "google/protobuf/field_mask.proto",
      "observer/observer.proto",
      "relay/relay.proto",
    ]);
  });

  test.each<[string, Request]>([
    ["unknown symbol", { fileContainingSymbol: "no.Such" }],
    ["unknown file", { fileByFilename: "no/such.proto" }],
    [
      "unknown extension",
      { fileContainingExtension: { containingType: "flow.Flow", extensionNumber: 1000 } },
    ],
    ["extension numbers of an unknown type", { allExtensionNumbersOfType: "no.Such" }],
  ])("reflection - %s answers error_response NOT_FOUND and the stream goes on", async (_, req) => {
    const [err, list] = await withSession(version, async (s) => [
      await s.ask(req),
      await s.ask({ listServices: "" }),
    ]);
    expect(err?.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);
    expect(list?.listServicesResponse?.service.length).toBe(8);
  });

  test("reflection - all_extension_numbers_of_type of a known message is empty", async () => {
    const r = await withSession(version, (s) => s.ask({ allExtensionNumbersOfType: "flow.Flow" }));
    expect(r.allExtensionNumbersResponse?.baseTypeName).toBe("flow.Flow");
    expect(r.allExtensionNumbersResponse?.extensionNumber ?? [1]).toEqual([]);
  });
});

/** Orders files so that every file comes after its imports, as a FileDescriptorSet wants. */
function importsFirst(files: FileDescriptorProto[]): FileDescriptorProto[] {
  const byName = new Map(files.map((f) => [f.name, f]));
  const out: FileDescriptorProto[] = [];
  const seen = new Set<string>();
  const visit = (name: string): void => {
    const file = byName.get(name);
    if (seen.has(name) || file === undefined) return;
    seen.add(name);
    for (const dep of file.dependency) visit(dep);
    out.push(file);
  };
  for (const f of files) visit(f.name);
  return out;
}

test("reflection - Go protobuf (buf, as grpcurl) accepts the reflected descriptors", async () => {
  // Collect the schema the way grpcurl does: list, then describe each service.
  const files = await withSession("v1", async (s) => {
    const list = await s.ask({ listServices: "" });
    const out: FileDescriptorProto[] = [];
    for (const { name } of list.listServicesResponse?.service ?? []) {
      out.push(...decodeFiles(await s.ask({ fileContainingSymbol: name })));
    }
    return out;
  });
  const dir = mkdtempSync(join(tmpdir(), "psct-reflection-"));
  try {
    const set = create(FileDescriptorSetSchema, { file: importsFirst(files) });
    writeFileSync(join(dir, "set.binpb"), toBinary(FileDescriptorSetSchema, set));
    const flowJson = '{"time":"2024-01-01T00:00:00Z","IP":{"source":"10.0.0.1"},"Type":"L3_L4"}';
    writeFileSync(join(dir, "flow.json"), flowJson);
    const buf = Bun.spawnSync(
      [
        join(ROOT, "node_modules/.bin/buf"),
        "convert",
        join(dir, "set.binpb"),
        "--type",
        "flow.Flow",
        "--from",
        join(dir, "flow.json"),
        "--to",
        "-#format=json",
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(buf.stderr.toString()).toBe("");
    expect(JSON.parse(buf.stdout.toString())).toEqual(JSON.parse(flowJson));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("reflection - a request without a question answers INVALID_ARGUMENT", () => {
  const index = new DescriptorIndex([Health.file], [Health.typeName]);
  const answer = answerReflection(index, { case: undefined }, new Set());
  expect(answer.case).toBe("errorResponse");
  expect(answer.case === "errorResponse" ? answer.value.errorCode : 0).toBe(
    grpc.status.INVALID_ARGUMENT,
  );
});
