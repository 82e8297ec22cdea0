import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Bus, connectBus, openLeaseBucket } from "@periscope/bus";
import { telemetryV1 } from "@periscope/proto";
import { createLogger, createMetrics, type Metrics } from "@periscope/telemetry";
import { freePort, type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { startEnricher } from "../enricher.ts";
import { holderId, PartitionOwnership } from "../ownership.ts";
import { ContainerCache } from "./container-cache.ts";
import {
  type ContainerEventPublisher,
  containerEventSubject,
  publishContainerEvents,
} from "./container-events.ts";

const log = createLogger("container-events-test", "silent");
const NODE = "ce-node";
const SUBJECT = containerEventSubject(NODE);
/** Long enough that only a recheck (or a change) notices a new role. */
const NEVER_MS = 3_600_000;

const hexId = (n: number): string => n.toString(16).padStart(2, "0").repeat(32);

interface EngineContainer {
  Id: string;
  Name: string;
  Config: { Image: string; Labels: Record<string, string> };
  State: { Status: string };
}

/**
 * The Docker engine API as the container cache reads it (`/containers/json`,
 * `/containers/<id>/json`, the `/events` stream), served on a unix socket: this machine
 * runs no dockerd for these tests. `emit` changes a container and streams the event.
 */
class EngineApi {
  readonly containers = new Map<string, EngineContainer>();
  readonly streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  /** Event streams opened so far. */
  opened = 0;
  readonly server: ReturnType<typeof Bun.serve>;
  /** Seconds of the next event (an engine time far from now, to tell changes from announcements). */
  private time = 1_700_000_000;

  constructor(readonly socket: string) {
    this.server = Bun.serve({ unix: socket, fetch: (req) => this.handle(req) });
  }

  add(n: number, name: string, image: string, status: string): string {
    const id = hexId(n);
    this.containers.set(id, {
      Id: id,
      Name: `/${name}`,
      Config: { Image: image, Labels: { app: name } },
      State: { Status: status },
    });
    return id;
  }

  /** Sends `action` on container `id` (its status set first, as the engine does); its time, ms. */
  emit(id: string, action: string, status: string): number {
    const c = this.containers.get(id);
    if (c) c.State.Status = status;
    if (action === "destroy") this.containers.delete(id);
    const time = ++this.time;
    const line = JSON.stringify({
      Type: "container",
      Action: action,
      Actor: { ID: id, Attributes: {} },
      time,
      timeNano: time * 1e9,
    });
    const bytes = new TextEncoder().encode(`${line}\n`);
    for (const s of this.streams) {
      try {
        s.enqueue(bytes);
      } catch {
        this.streams.delete(s); // its reader went away
      }
    }
    return time * 1000;
  }

  private handle(req: Request): Response {
    const path = new URL(req.url).pathname;
    if (path === "/containers/json") {
      return Response.json([...this.containers.keys()].map((Id) => ({ Id })));
    }
    const inspect = /^\/containers\/([0-9a-f]{64})\/json$/.exec(path);
    if (inspect) {
      const c = this.containers.get(inspect[1] as string);
      return c
        ? Response.json(c)
        : Response.json({ message: "no such container" }, { status: 404 });
    }
    if (path === "/events") {
      let ctl: ReadableStreamDefaultController<Uint8Array> | undefined;
      const body = new ReadableStream<Uint8Array>({
        start: (c) => {
          ctl = c;
          this.streams.add(c);
          this.opened++;
        },
        cancel: () => {
          if (ctl) this.streams.delete(ctl);
        },
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    }
    return Response.json({ message: "not found" }, { status: 404 });
  }

  stop(): void {
    for (const s of this.streams) {
      try {
        s.close();
      } catch {
        // already closed by its reader
      }
    }
    this.streams.clear();
    this.server.stop(true);
  }
}

/** One container event as a subscriber reads it. */
interface Seen {
  id: string;
  name: string;
  image: string;
  state: string;
  timeMs: number;
}

/** Events on SUBJECT; `settle` returns those that arrived before a marker each connection sends. */
class Subscriber {
  readonly events: Seen[] = [];
  private readonly markers = new Set<string>();
  private taken = 0;

  constructor(nc: NatsConnection) {
    nc.subscribe(SUBJECT, {
      callback: (_err, msg) => {
        const text = new TextDecoder().decode(msg.data);
        if (text.startsWith("marker-")) {
          this.markers.add(text);
          return;
        }
        const ev = fromBinary(telemetryV1.TelemetryEventSchema, msg.data);
        if (ev.event.case !== "container") throw new Error(`unexpected ${ev.event.case}`);
        const c = ev.event.value.container;
        this.events.push({
          id: c?.id ?? "",
          name: c?.name ?? "",
          image: c?.image ?? "",
          state: ev.event.value.action,
          timeMs: ev.time ? timestampMs(ev.time) : 0,
        });
      },
    });
  }

  /**
   * The events that arrived since the last call. Each of `publishers` sends a marker after
   * what it published; core NATS keeps one connection's order, so once every marker is
   * here, nothing they published before is still on the way.
   */
  async settle(publishers: NatsConnection[]): Promise<Seen[]> {
    const sent = publishers.map(() => `marker-${crypto.randomUUID()}`);
    publishers.forEach((nc, i) => {
      nc.publish(SUBJECT, new TextEncoder().encode(sent[i]));
    });
    await waitFor(() => sent.every((m) => this.markers.has(m)), { what: "markers" });
    const out = this.events.slice(this.taken);
    this.taken = this.events.length;
    return out;
  }
}

const key = (e: Seen): string => `${e.name}:${e.state}`;
const keys = (es: Seen[]): string[] => es.map(key).sort();

/** Sample values of `periscope_enricher_container_events_total` by kind. */
async function counted(metrics: Metrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await metrics.registry.metrics()).split("\n")) {
    const m = /^periscope_enricher_container_events_total\{kind="(\w+)"\} (\S+)$/.exec(line);
    if (m) out[m[1] as string] = Number(m[2]);
  }
  return out;
}

describe("container events", () => {
  let nats: LocalNats;
  let dir: string;
  let engine: EngineApi;
  const buses: Bus[] = [];
  const caches: ContainerCache[] = [];
  const publishers: ContainerEventPublisher[] = [];
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    nats = await startLocalNats({});
    dir = mkdtempSync(join(tmpdir(), "periscope-ce-"));
    engine = new EngineApi(join(dir, "docker.sock"));
    ids.web = engine.add(1, "web", "nginx:1.27", "running");
    ids.db = engine.add(2, "db", "postgres:16", "paused");
    ids.job = engine.add(3, "job", "busybox:1", "exited");
    ids.fresh = engine.add(4, "fresh", "alpine:3", "created");
    ids.gone = engine.add(5, "gone", "alpine:3", "running");
  });
  // Each test's publishers, caches and connections end with it.
  afterEach(async () => {
    for (const p of publishers.splice(0)) p.stop();
    for (const c of caches.splice(0)) c.stop();
    for (const b of buses.splice(0)) await b.close().catch(() => {});
  });
  afterAll(async () => {
    engine?.stop();
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function dial(name: string): Promise<Bus> {
    const bus = await connectBus({ url: nats.url, name, log });
    buses.push(bus);
    return bus;
  }

  /** A real container cache following the engine (its event stream open). */
  async function follow(): Promise<ContainerCache> {
    const before = engine.opened;
    const cache = new ContainerCache({ dockerSocket: engine.socket });
    caches.push(cache);
    await cache.start();
    await waitFor(() => engine.opened > before, { what: "cache follows the engine events" });
    return cache;
  }

  function publish(opts: Parameters<typeof publishContainerEvents>[0]): ContainerEventPublisher {
    const p = publishContainerEvents(opts);
    publishers.push(p);
    return p;
  }

  test("container events - gaining the publisher role announces the Docker containers not destroyed, once; changes while not publisher are skipped and counted", async () => {
    const bus = await dial("ce-a");
    const sub = new Subscriber(bus.nc);
    await bus.nc.flush();
    const cache = await follow();
    // Destroyed (still retained), not announced.
    engine.emit(ids.gone as string, "destroy", "");
    await waitFor(() => cache.byContainerId(ids.gone as string)?.state === "destroyed", {
      what: "destroyed container in the cache",
    });
    // A systemd unit and a Docker container the engine does not know (no state): not announced.
    cache.lookup("/system.slice/nginx.service");
    const unknown = hexId(9);
    expect(cache.lookup(`/system.slice/docker-${unknown}.scope`)).toMatchObject({ state: "" });
    expect(cache.list()).toHaveLength(7);

    let role = false;
    const metrics = createMetrics("enricher");
    const pub = publish({
      nc: bus.nc,
      node: NODE,
      containers: cache,
      publisher: () => role,
      metrics,
      checkMs: NEVER_MS,
    });
    expect(await sub.settle([bus.nc])).toEqual([]);
    expect(await counted(metrics)).toEqual({ published: 0, announced: 0, skipped: 0 });

    // Not the publisher: the change is seen and skipped.
    engine.emit(ids.job as string, "start", "running");
    await waitFor(() => pub.stats.skipped === 1, { what: "skipped change" });
    expect(await sub.settle([bus.nc])).toEqual([]);

    // Gains the role: each Docker container with its state now, stamped now.
    const t0 = Date.now();
    role = true;
    pub.recheck();
    const announced = await sub.settle([bus.nc]);
    expect(keys(announced)).toEqual(["db:paused", "fresh:created", "job:running", "web:running"]);
    expect(announced.find((e) => e.name === "web")).toMatchObject({
      id: ids.web,
      image: "nginx:1.27",
    });
    for (const e of announced) expect(e.timeMs).toBeGreaterThanOrEqual(t0 - 1000);
    // Still the publisher: nothing more.
    pub.recheck();
    expect(await sub.settle([bus.nc])).toEqual([]);

    // A change now is published, with the engine's time.
    const pausedAt = engine.emit(ids.web as string, "pause", "paused");
    await waitFor(() => pub.stats.published === 1, { what: "published change" });
    expect(await sub.settle([bus.nc])).toEqual([
      {
        id: ids.web as string,
        name: "web",
        image: "nginx:1.27",
        state: "paused",
        timeMs: pausedAt,
      },
    ]);

    // Loses the role: skipped (noticed by the change itself), then gains it again.
    role = false;
    engine.emit(ids.web as string, "unpause", "running");
    await waitFor(() => pub.stats.skipped === 2, { what: "second skipped change" });
    pub.recheck();
    expect(await sub.settle([bus.nc])).toEqual([]);
    role = true;
    pub.recheck();
    expect(keys(await sub.settle([bus.nc]))).toEqual([
      "db:paused",
      "fresh:created",
      "job:running",
      "web:running",
    ]);
    expect(pub.stats).toEqual({ published: 1, announced: 8, skipped: 2 });
    expect(await counted(metrics)).toEqual({ published: 1, announced: 8, skipped: 2 });
  });

  test("container events - a gain noticed by a change announces the others, then sends the change; the periodic check notices a gain alone", async () => {
    const bus = await dial("ce-b");
    const sub = new Subscriber(bus.nc);
    await bus.nc.flush();
    const cache = await follow();
    let role = false;
    const pub = publish({
      nc: bus.nc,
      node: NODE,
      containers: cache,
      publisher: () => role,
      checkMs: NEVER_MS,
    });
    role = true;
    const at = engine.emit(ids.db as string, "unpause", "running");
    await waitFor(() => pub.stats.published === 1, { what: "change published" });
    const got = await sub.settle([bus.nc]);
    // The changed container once, as the change (the last one, with the engine's time).
    expect(keys(got)).toEqual(["db:running", "fresh:created", "job:running", "web:running"]);
    expect(got.at(-1)).toMatchObject({ name: "db", state: "running", timeMs: at });
    expect(pub.stats).toEqual({ published: 1, announced: 3, skipped: 0 });

    // Without a change nor a recheck: the periodic check.
    const polled = publish({
      nc: bus.nc,
      node: NODE,
      containers: cache,
      publisher: () => role,
      checkMs: 50,
    });
    expect(polled.stats.announced).toBe(4);
    role = false;
    polled.recheck();
    role = true;
    await waitFor(() => polled.stats.announced === 8, { what: "periodic check announces" });
    // The first publisher, never rechecked and without a change, announced nothing more.
    expect(pub.stats.announced).toBe(3);
    const four = ["db:running", "fresh:created", "job:running", "web:running"];
    expect(keys(await sub.settle([bus.nc]))).toEqual([...four, ...four].sort());
  });

  test("container events - counter family passes promtool check metrics", async () => {
    const bus = await dial("ce-c");
    const cache = await follow();
    const metrics = createMetrics("enricher");
    publish({ nc: bus.nc, node: NODE, containers: cache, metrics, checkMs: NEVER_MS });
    const text = await metrics.registry.metrics();
    const ours = text
      .split("\n")
      .filter((l) => /^(# (HELP|TYPE) )?periscope_enricher_container_events_total/.test(l));
    expect(ours).toHaveLength(5);
    expect(ours).toContain("# TYPE periscope_enricher_container_events_total counter");
    expect(await counted(metrics)).toEqual({ published: 0, announced: 4, skipped: 0 });
    const p = Bun.spawn(["promtool", "check", "metrics"], {
      stdin: new TextEncoder().encode(`${ours.join("\n")}\n`),
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    expect(`${out}${err}`.trim()).toBe("");
    expect(code).toBe(0);
  });

  test("container events - replicas over NATS: one publishes; when the holder of partition 0 leaves or dies, the next holder announces and publishes", async () => {
    const TTL = 900;
    interface Replica {
      bus: Bus;
      own: PartitionOwnership;
      pub: ContainerEventPublisher;
      metrics: Metrics;
      off: () => void;
    }
    const replicas: Replica[] = [];
    const watcher = await dial("ce-watch");
    const sub = new Subscriber(watcher.nc);
    await watcher.nc.flush();
    // As the enricher wires them: publisher = holds(0), rechecked on ownership changes of 0.
    const join = async (name: string): Promise<Replica> => {
      const bus = await dial(name);
      const kv = await openLeaseBucket(bus, TTL, "ce-test-leases");
      const own = new PartitionOwnership({
        kv,
        holder: holderId(name),
        partitions: 2,
        ttlMs: TTL,
        log,
        start: async () => {},
        stop: async () => {},
      });
      await own.start();
      const metrics = createMetrics("enricher");
      const pub = publish({
        nc: bus.nc,
        node: NODE,
        containers: await follow(),
        publisher: () => own.holds(0),
        metrics,
        checkMs: NEVER_MS,
      });
      const off = own.onChange((_change, p) => {
        if (p === 0) pub.recheck();
      });
      const r = { bus, own, pub, metrics, off };
      replicas.push(r);
      return r;
    };
    try {
      const a = await join("ce-r1");
      const b = await join("ce-r2");
      await waitFor(() => a.own.owned().length === 1 && b.own.owned().length === 1, {
        what: "one partition each",
      });
      const first = a.own.holds(0) ? a : b;
      const second = first === a ? b : a;
      expect(second.own.holds(0)).toBe(false);
      // The first member announced at its start (alone then); the second did not.
      expect(first.pub.stats.announced).toBe(4);
      expect(second.pub.stats.announced).toBe(0);
      const conns = [a.bus.nc, b.bus.nc];
      expect(keys(await sub.settle(conns))).toEqual([
        "db:running",
        "fresh:created",
        "job:running",
        "web:running",
      ]);

      // One change, both caches see it, one publishes it.
      engine.emit(ids.fresh as string, "start", "running");
      await waitFor(() => first.pub.stats.published === 1 && second.pub.stats.skipped === 1, {
        what: "change published by one, skipped by the other",
      });
      expect(keys(await sub.settle(conns))).toEqual(["fresh:running"]);

      // The holder of partition 0 leaves: the other gains it and announces at once.
      const t0 = Date.now();
      await first.own.stop();
      await waitFor(() => second.pub.stats.announced === 4, {
        timeoutMs: 5000,
        intervalMs: 10,
        what: "new holder announces",
      });
      console.log(`[container-events] new publisher announced ${Date.now() - t0} ms after leave`);
      expect(second.own.holds(0)).toBe(true);
      expect(keys(await sub.settle(conns))).toEqual([
        "db:running",
        "fresh:running",
        "job:running",
        "web:running",
      ]);

      engine.emit(ids.job as string, "die", "exited");
      await waitFor(() => second.pub.stats.published === 1 && first.pub.stats.skipped === 1, {
        what: "change published by the new holder",
      });
      expect(keys(await sub.settle(conns))).toEqual(["job:exited"]);
      expect(await counted(first.metrics)).toEqual({ published: 1, announced: 4, skipped: 1 });
      expect(await counted(second.metrics)).toEqual({ published: 1, announced: 4, skipped: 1 });

      // A third joins (it takes partition 1); the holder of 0 is then cut off, as if killed:
      // its lease expires after one TTL and the third takes it and announces.
      const third = await join("ce-r3");
      await waitFor(() => second.own.owned().join() === "0" && third.own.owned().join() === "1", {
        what: "partitions shared with the third",
      });
      expect(third.pub.stats.announced).toBe(0);
      const t1 = Date.now();
      await second.bus.nc.close();
      await waitFor(() => third.pub.stats.announced === 4, {
        timeoutMs: 6000,
        intervalMs: 10,
        what: "third announces after the holder died",
      });
      console.log(
        `[container-events] publisher died; the next announced after ${Date.now() - t1} ms (lease TTL ${TTL} ms)`,
      );
      expect(keys(await sub.settle([third.bus.nc]))).toEqual([
        "db:running",
        "fresh:running",
        "job:exited",
        "web:running",
      ]);
      engine.emit(ids.web as string, "pause", "paused");
      await waitFor(
        () =>
          third.pub.stats.published === 1 &&
          second.pub.stats.skipped === 2 &&
          first.pub.stats.skipped === 2,
        { what: "change published by the third only" },
      );
      expect(second.own.holds(0)).toBe(false);
      expect(keys(await sub.settle([third.bus.nc]))).toEqual(["web:paused"]);
      expect(await counted(third.metrics)).toEqual({ published: 1, announced: 4, skipped: 0 });
    } finally {
      for (const r of replicas) {
        r.off();
        await r.own.stop();
      }
    }
  }, 30_000);

  test("container events - a running enricher exports the counters, every kind from the start", async () => {
    const port = await freePort();
    const enricher = await startEnricher(
      {
        natsUrl: nats.url,
        nodeName: "ce-enricher",
        opsAddr: `127.0.0.1:${port}`,
        logLevel: "silent",
        queueGroup: "ce-enrichers",
      },
      log,
    );
    try {
      const text = await (await fetch(`http://127.0.0.1:${enricher.opsPort}/metrics`)).text();
      // No Docker engine socket on this machine: nothing to announce, nothing changes.
      for (const kind of ["published", "announced", "skipped"]) {
        expect(text).toContain(`periscope_enricher_container_events_total{kind="${kind}"} 0`);
      }
    } finally {
      await enricher.stop();
    }
  }, 20_000);
});
