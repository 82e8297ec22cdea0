/**
 * Processes in real Docker containers: a locally built image (curl, busybox httpd) on the
 * imported Debian root, a network of its own with an explicit subnet, a server and a client
 * container; collector (process events on, attached to the containers' host-side veths),
 * enricher and observer as host processes. Flows carry the client's curl and the server's
 * httpd with their containers, Docker endpoint metadata, `periscope observe --container`
 * selects them, a telemetry subscription filtered by image gets curl's exec and exit, and the
 * container cache's lifecycle events come through the observer and on NATS.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { create, createRegistry, fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { waitFor } from "@periscope/devstack";
import { processCondition } from "@periscope/flow";
import { type Flow, FlowFilterSchema, Observer, processV1, telemetryV1 } from "@periscope/proto";
import {
  DOCKER,
  type Engine,
  ensureBaseImage,
  ensureEngine,
  exec,
  execOk,
  removeStale,
} from "./docker/engine.ts";
import { ROOT, type Stack, startStack, testPrefix } from "./harness.ts";
import {
  type OpenSubscription,
  openSubscription,
  type SubscriptionInit,
  waitSubscriptions,
} from "./telemetry-subscription.ts";

const SKIP = process.env.PERISCOPE_TEST_IN_MINIMAL_ROOT === "1";
if (SKIP) {
  console.log(
    "SKIP tests/process-docker.test.ts: PERISCOPE_TEST_IN_MINIMAL_ROOT=1, and no Docker engine runs inside the minimal-root chroot",
  );
}

const { EventKind } = telemetryV1;
type TelemetryEvent = telemetryV1.TelemetryEvent;

const NODE = "dock-1";
const DOCKERFILE = join(ROOT, "tests/docker/process.Dockerfile");
/** The image's tag follows its Dockerfile: kept between runs, rebuilt when the file changes. */
const IMAGE = `psct-proc:${createHash("sha256").update(readFileSync(DOCKERFILE)).digest("hex").slice(0, 12)}`;
/** Label on everything this file creates in the engine: the pid of the test process. */
const OWNER_LABEL = "psct.process-docker.owner";
const HTTP_PORT = 8080;
const CLIENT_UID = 1234;

let engine: Engine | undefined;
let stack: Stack | undefined;
const prefix = testPrefix();
const net = `${prefix}net`;
const subnetOctet = 1 + Math.floor(Math.random() * 250);
const serverIp = `10.213.${subnetOctet}.10`;
const clientIp = `10.213.${subnetOctet}.20`;
const server = `${prefix}srv`;
const client = `${prefix}cli`;
const ids: Record<string, string> = {};
let telemetry: ReturnType<typeof createClient<typeof telemetryV1.Telemetry>>;

const st = (): Stack => {
  if (!stack) throw new Error("stack not started");
  return stack;
};
const docker = (args: string[], timeoutMs = 120_000): Promise<string> =>
  execOk([DOCKER, ...args], { timeoutMs }).then((s) => s.trim());

/** Makes debian:12 (from the cached Debian root) and the test image exist; prints what it made. */
async function ensureImages(): Promise<void> {
  await ensureBaseImage();
  if ((await exec([DOCKER, "image", "inspect", IMAGE], { timeoutMs: 30_000 })).code !== 0) {
    const t0 = performance.now();
    // Host network: the build reaches the apt mirror the way this machine does.
    await docker(
      [
        "build",
        "--quiet",
        "--network",
        "host",
        "-t",
        IMAGE,
        "-f",
        DOCKERFILE,
        join(ROOT, "tests/docker"),
      ],
      600_000,
    );
    console.log(`built ${IMAGE} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

/** Starts a container on the test network; returns its full id. */
async function runContainer(
  name: string,
  ip: string,
  role: string,
  argv: string[],
): Promise<string> {
  return docker([
    "run",
    "-d",
    "--name",
    name,
    "--network",
    net,
    "--ip",
    ip,
    "--label",
    `${OWNER_LABEL}=${process.pid}`,
    "--label",
    `psct.role=${role}`,
    IMAGE,
    ...argv,
  ]);
}

/** Opens a subscription read in the background; `stop()` throws what ended it early. */
function open(sub: SubscriptionInit): OpenSubscription {
  const s = openSubscription(telemetry, sub);
  return {
    ...s,
    async stop() {
      await s.stop();
      if (s.error() !== undefined) throw s.error();
    },
  };
}

/** Waits until the observer counts `n` open subscriptions. */
const subscriptions = (n: number): Promise<void> => waitSubscriptions(st(), n);

/** The Process a flow carries, undefined without one. */
function processOf(f: Flow): processV1.Process | undefined {
  const ext = f.extensions;
  if (ext === undefined || !ext.typeUrl.endsWith("/periscope.process.v1.Process")) return undefined;
  return anyUnpack(ext, processV1.ProcessSchema);
}

/** TCP flows between the client and the server's HTTP port, from the observer. */
async function httpFlows(): Promise<Flow[]> {
  const out: Flow[] = [];
  for await (const r of st().client.getFlows({
    number: 10_000n,
    whitelist: [
      create(FlowFilterSchema, { sourceIp: [clientIp], destinationPort: [String(HTTP_PORT)] }),
      create(FlowFilterSchema, { sourceIp: [serverIp], sourcePort: [String(HTTP_PORT)] }),
    ],
  })) {
    if (r.responseTypes.case === "flow") out.push(r.responseTypes.value);
  }
  return out;
}

/** Flows matching one CEL expression (`experimental.cel_expression`), from the observer. */
async function celFlows(expr: string): Promise<Flow[]> {
  const out: Flow[] = [];
  for await (const r of st().client.getFlows({
    number: 10_000n,
    whitelist: [create(FlowFilterSchema, { experimental: { celExpression: [expr] } })],
  })) {
    if (r.responseTypes.case === "flow") out.push(r.responseTypes.value);
  }
  return out;
}

/** Runs `periscope observe` against the stack's observer; returns its JSON lines. */
async function observeJson(args: string[]): Promise<Record<string, unknown>[]> {
  const argv = ["bun", "run", join(ROOT, "cli/src/main.ts"), "observe"];
  argv.push("--server", st().observerAddr, "--last", "10000", "-o", "json", ...args);
  const r = await exec(argv, { timeoutMs: 90_000 });
  if (r.code !== 0) throw new Error(`periscope observe ${args.join(" ")}: ${r.stderr}`);
  return r.stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe.skipIf(SKIP)("processes in Docker containers", () => {
  beforeAll(async () => {
    const t0 = performance.now();
    engine = await ensureEngine();
    await removeStale(OWNER_LABEL);
    await ensureImages();
    const t1 = performance.now();
    stack = await startStack({
      prefix,
      pods: [{ name: "idle" }],
      // Docker's host-side veths (veth + 7 hex digits), attached as the containers appear;
      // the sockets behind them are in the containers' namespaces, which the collector then
      // reports socket owners of (owner-namespaces.ts).
      nodes: [{ name: NODE, interfaces: "veth???????" }],
      env: { collector: { PERISCOPE_PROCESS_EVENTS: "on" } },
    });
    await waitFor(
      async () => {
        await exec(["/bin/true"]);
        return (
          (await st().metric(`collector-${NODE}`, "periscope_collector_process_records_total", {
            kind: "exec",
          })) > 0
        );
      },
      { timeoutMs: 20_000, what: "collector publishing process records" },
    );
    telemetry = createClient(
      telemetryV1.Telemetry,
      createGrpcTransport({ baseUrl: `http://${st().observerAddr}` }),
    );
    await docker([
      "network",
      "create",
      "--subnet",
      `10.213.${subnetOctet}.0/24`,
      "--label",
      `${OWNER_LABEL}=${process.pid}`,
      "-o",
      `com.docker.network.bridge.name=${prefix}br`,
      net,
    ]);
    // The server listens after the sensor runs (older listeners are not attributed).
    ids.server = await runContainer(server, serverIp, "server", [
      "busybox",
      "httpd",
      "-f",
      "-p",
      String(HTTP_PORT),
      "-h",
      "/etc",
    ]);
    ids.client = await runContainer(client, clientIp, "client", ["sleep", "infinity"]);
    await waitFor(
      async () =>
        (await st().metric(`collector-${NODE}`, "periscope_collector_attached_interfaces")) === 2,
      { timeoutMs: 30_000, what: "collector attached to both containers' veths" },
    );
    console.log(
      `engine + images ${((t1 - t0) / 1000).toFixed(1)} s, stack + containers ${((performance.now() - t1) / 1000).toFixed(1)} s`,
    );
  }, 600_000);

  afterAll(async () => {
    if (engine) {
      const r = await exec([DOCKER, "rm", "-f", server, client, `${prefix}life`]);
      if (r.code !== 0 && !r.stderr.includes("No such container")) console.error(r.stderr);
      await exec([DOCKER, "network", "rm", net]);
    }
    await stack?.stop();
    await engine?.stop();
  }, 120_000);

  test("curl in the client container, httpd in the server: process and container on both sides, endpoint metadata", async () => {
    const token = `psct-${Math.random().toString(36).slice(2, 10)}`;
    const s = open({
      events: [EventKind.PROCESS_EXEC, EventKind.PROCESS_EXIT],
      containers: [{ image: "psct-proc:*" }],
    });
    let flows: Flow[] = [];
    let curlTgid = -1;
    let curlNsPid = -1;
    try {
      await subscriptions(1);
      // The client container's running event reached the observer (name and image known).
      const url = `http://${serverIp}:${HTTP_PORT}/hostname?${token}`;
      const code = await docker([
        "exec",
        "-u",
        String(CLIENT_UID),
        client,
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        url,
      ]);
      expect(code).toBe("200");
      await waitFor(
        () =>
          s.events.some(
            (e) => e.event.case === "exit" && e.event.value.process?.args.includes(url) === true,
          ),
        {
          timeoutMs: 15_000,
          what: "exec and exit of curl through the image-filtered subscription",
        },
      );
      const exec_ = s.events.find(
        (e) => e.event.case === "exec" && e.event.value.process?.args.includes(url) === true,
      );
      if (exec_?.event.case !== "exec") throw new Error("no exec of curl");
      const curl = exec_.event.value.process;
      curlTgid = curl?.tgid ?? -1;
      curlNsPid = curl?.nsPid ?? -1;
      // docker exec'd into the container's pid namespace: its own small pid there.
      expect(curlNsPid).toBeGreaterThan(1);
      expect(curlNsPid).not.toBe(curlTgid);
      expect(curl?.binary).toBe("/usr/bin/curl");
      expect(curl?.uid).toBe(CLIENT_UID);
      expect(curl?.container?.id).toBe(ids.client);
      expect(curl?.container?.name).toBe(client);
      expect(curl?.container?.image).toBe(IMAGE);
      const exit = s.events.find(
        (e) => e.event.case === "exit" && e.event.value.process?.tgid === curl?.tgid,
      );
      if (exit?.event.case !== "exit") throw new Error("no exit of curl");
      expect(exit.event.value.code).toBe(0);
      // Only processes of containers of this image went through the filter.
      for (const e of s.events) {
        if (e.event.case === "exec" || e.event.case === "exit") {
          expect(e.event.value.process?.container?.image).toBe(IMAGE);
        }
      }

      await waitFor(
        async () => {
          flows = await httpFlows();
          const mine = flows.filter((f) => processOf(f) !== undefined);
          return (
            mine.some((f) => f.IP?.source === clientIp && processOf(f)?.tgid === curl?.tgid) &&
            mine.some((f) => f.IP?.source === serverIp)
          );
        },
        { timeoutMs: 20_000, what: "flows of curl and of httpd with their processes" },
      );
    } finally {
      await s.stop();
    }
    const out = flows.find((f) => f.IP?.source === clientIp && processOf(f)?.tgid === curlTgid);
    if (out === undefined) throw new Error("no client flow");
    const cp = processOf(out);
    expect(cp?.binary).toBe("/usr/bin/curl");
    expect(cp?.nsPid).toBe(curlNsPid);
    expect(cp?.args.some((a) => a.includes(token))).toBe(true);
    expect(cp?.uid).toBe(CLIENT_UID);
    expect(cp?.socketSource).toBe("connect");
    expect(cp?.container).toMatchObject({
      id: ids.client,
      name: client,
      image: IMAGE,
      runtime: "docker",
    });
    expect(cp?.container?.labels["psct.role"]).toBe("client");
    expect(out.source).toMatchObject({ namespace: "docker", podName: client });
    expect(out.source?.labels).toContain("psct.role=client");
    expect(out.destination).toMatchObject({ namespace: "docker", podName: server });

    const back = flows.find((f) => f.IP?.source === serverIp && processOf(f) !== undefined);
    if (back === undefined) throw new Error("no server flow");
    const sp = processOf(back);
    expect(sp?.binary).toBe("/usr/bin/busybox");
    expect(sp?.nsPid).toBe(1); // the container's first process
    expect(sp?.tgid).toBeGreaterThan(1);
    expect(sp?.args).toEqual(["busybox", "httpd", "-f", "-p", String(HTTP_PORT), "-h", "/etc"]);
    expect(sp?.uid).toBe(0);
    expect(sp?.socketSource).toBe("accept");
    expect(sp?.container).toMatchObject({ id: ids.server, name: server, image: IMAGE });
    expect(back.source).toMatchObject({ namespace: "docker", podName: server });
    expect(back.destination?.podName).toBe(client);
    // Every flow of the exchange carries one of the two processes.
    const unattributed = flows.filter((f) => processOf(f) === undefined);
    console.log(
      `${flows.length} flows of the exchange, ${unattributed.length} without a process:`,
      unattributed.map(
        (f) => `${f.IP?.source} -> ${f.IP?.destination} ${f.Summary} ${f.traceObservationPoint}`,
      ),
    );
  }, 90_000);

  test("periscope observe: --container and --container-image select the containers' flows", async () => {
    // Two through the CLI (as separate processes, in parallel); the same CEL conditions the
    // CLI builds also straight over gRPC, for the id prefix and a container that is not there.
    const [byName, byImage, byId, none] = await Promise.all([
      observeJson(["--container", client]),
      observeJson(["--container-image", "psct-proc:*", "--to-port", String(HTTP_PORT)]),
      celFlows(processCondition("container", (ids.server as string).slice(0, 12))),
      celFlows(processCondition("container", `${prefix}nothing`)),
    ]);
    /** The container and binary in a JSON line's flow.extensions. */
    const ext = (l: Record<string, unknown>) => {
      const e = (l.flow as { extensions?: Record<string, unknown> } | undefined)?.extensions;
      const c = e?.container as { id?: string; name?: string; image?: string } | undefined;
      return { type: e?.["@type"], binary: e?.binary, id: c?.id, name: c?.name, image: c?.image };
    };
    expect(byName.length).toBeGreaterThan(0);
    for (const l of byName) {
      expect(ext(l)).toMatchObject({
        type: "type.googleapis.com/periscope.process.v1.Process",
        name: client,
        id: ids.client,
        binary: "/usr/bin/curl",
      });
    }
    expect(byId.length).toBeGreaterThan(0);
    for (const f of byId) {
      expect(processOf(f)?.container).toMatchObject({ id: ids.server, name: server });
    }
    expect(byImage.length).toBeGreaterThan(0);
    for (const l of byImage) expect(ext(l)).toMatchObject({ image: IMAGE, name: client });
    expect(none).toEqual([]);
    // A Connect JSON client gets the process in the flow's JSON too.
    const json = createClient(
      Observer,
      createConnectTransport({
        baseUrl: `http://${st().observerAddr}`,
        httpVersion: "1.1",
        useBinaryFormat: false,
        jsonOptions: { registry: createRegistry(processV1.file_periscope_process_v1_process) },
      }),
    );
    const viaJson: Flow[] = [];
    for await (const r of json.getFlows({
      number: 10_000n,
      whitelist: [create(FlowFilterSchema, { sourceIp: [clientIp] })],
    })) {
      if (r.responseTypes.case === "flow") viaJson.push(r.responseTypes.value);
    }
    expect(viaJson.length).toBeGreaterThan(0);
    for (const f of viaJson) expect(processOf(f)?.container?.id).toBe(ids.client);
  }, 120_000);

  test("lifecycle of a container: created, running, exited, destroyed, through a subscription and on NATS", async () => {
    const name = `${prefix}life`;
    const s = open({ events: [EventKind.CONTAINER], containers: [{ name: `${prefix}li*` }] });
    const direct: TelemetryEvent[] = [];
    const sub = st().bus.nc.subscribe(`periscope.telemetry.${NODE}.container`, {
      callback: (err, msg) => {
        if (!err) direct.push(fromBinary(telemetryV1.TelemetryEventSchema, msg.data));
      },
    });
    const actions = (evs: TelemetryEvent[]) =>
      evs.flatMap((e) =>
        e.event.case === "container" && e.event.value.container?.name === name
          ? [e.event.value.action]
          : [],
      );
    try {
      await subscriptions(1);
      const id = await docker([
        "create",
        "--name",
        name,
        "--network",
        net,
        "--ip",
        `10.213.${subnetOctet}.30`,
        "--label",
        `${OWNER_LABEL}=${process.pid}`,
        "--label",
        "tier=life",
        IMAGE,
        "sleep",
        "60",
      ]);
      await docker(["start", name]);
      // Reconnected with another address while running: the new address names it in flows
      // (the cache reads the container again on network events; no lifecycle event).
      const lifeIp = `10.213.${subnetOctet}.31`;
      await docker(["network", "disconnect", net, name]);
      await docker(["network", "connect", "--ip", lifeIp, net, name]);
      await waitFor(
        async () => {
          await exec([
            DOCKER,
            "exec",
            name,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "2",
            `http://${serverIp}:${HTTP_PORT}/hostname`,
          ]);
          const fs = await celFlows(`_flow.IP.source == "${lifeIp}"`);
          return fs.some((f) => f.source?.podName === name && processOf(f)?.container?.id === id);
        },
        { timeoutMs: 30_000, what: "a flow from the connected address named after the container" },
      );
      await docker(["stop", "-t", "0", name]);
      await docker(["rm", name]);
      const want = ["created", "running", "exited", "destroyed"];
      await waitFor(() => actions(s.events).length >= 4 && actions(direct).length >= 4, {
        timeoutMs: 20_000,
        what: "four lifecycle events through the subscription and on NATS",
      });
      expect(actions(s.events)).toEqual(want);
      expect(actions(direct)).toEqual(want);
      for (const e of direct) {
        if (e.event.case !== "container" || e.event.value.container?.name !== name) continue;
        expect(e.nodeName).toBe(NODE);
        expect(e.event.value.container).toMatchObject({ id, image: IMAGE, runtime: "docker" });
        expect(e.event.value.container?.labels.tier).toBe("life");
        expect(e.event.value.container?.state).toBe(e.event.value.action);
        expect(Math.abs(Number(e.time?.seconds) * 1000 - Date.now())).toBeLessThan(60_000);
      }
      // Other containers' events did not pass the name filter.
      for (const e of s.events) {
        if (e.event.case === "container") expect(e.event.value.container?.name).toBe(name);
      }
    } finally {
      sub.unsubscribe();
      await s.stop();
    }
  }, 60_000);

  test("an enricher started while the containers run announces them with their state", async () => {
    const seen = new Map<string, telemetryV1.ContainerEvent>();
    const sub = st().bus.nc.subscribe(`periscope.telemetry.${NODE}.container`, {
      callback: (err, msg) => {
        if (err) return;
        const ev = fromBinary(telemetryV1.TelemetryEventSchema, msg.data);
        if (ev.event.case === "container")
          seen.set(ev.event.value.container?.name ?? "", ev.event.value);
      },
    });
    try {
      const old = st().sup.get("enricher-0");
      if (old === undefined) throw new Error("no enricher-0");
      old.kill("SIGTERM");
      await old.exited;
      st().restart("enricher-0");
      await waitFor(() => seen.has(server) && seen.has(client), {
        timeoutMs: 45_000,
        what: "the running containers announced by the new enricher",
      });
      expect(seen.get(server)).toMatchObject({
        action: "running",
        container: { id: ids.server, image: IMAGE, state: "running" },
      });
      expect(seen.get(client)?.container?.labels["psct.role"]).toBe("client");
      expect(seen.has(`${prefix}life`)).toBe(false); // removed before: not announced
    } finally {
      sub.unsubscribe();
    }
  }, 60_000);
});
