/**
 * Container lifecycle events against the real Docker engine: containers of the base image
 * (`sleep infinity`, no network) created, started, paused, stopped and removed with the
 * docker CLI; the enricher's ContainerCache on the engine's socket; the publisher of
 * container events on a real nats-server, alone and as replicas sharing partition 0 through
 * PartitionOwnership. The engine may hold other containers (other tests'): assertions about
 * containers name this file's (owner label), the counters are checked against what the
 * cache handed out.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Bus, connectBus, openLeaseBucket } from "@periscope/bus";
import { type LocalNats, startLocalNats, waitFor } from "@periscope/devstack";
import { telemetryV1 } from "@periscope/proto";
import { createLogger, createMetrics, type Metrics } from "@periscope/telemetry";
import { holderId, PartitionOwnership } from "../services/enricher/src/ownership.ts";
import {
  ContainerCache,
  type ContainerEvent,
  type ContainerInfo,
} from "../services/enricher/src/process/container-cache.ts";
import {
  type ContainerEventPublisher,
  containerEventSubject,
  publishContainerEvents,
} from "../services/enricher/src/process/container-events.ts";
import { containerEventCounts } from "../services/enricher/src/process/testing.ts";
import {
  BASE_IMAGE,
  DOCKER,
  type Engine,
  ensureBaseImage,
  ensureEngine,
  exec,
  execOk,
  removeStale,
} from "./docker/engine.ts";
import { testPrefix } from "./harness.ts";

const SKIP = process.env.PERISCOPE_TEST_IN_MINIMAL_ROOT === "1";
if (SKIP) {
  console.log(
    "SKIP tests/container-events.test.ts: PERISCOPE_TEST_IN_MINIMAL_ROOT=1, and no Docker engine runs inside the minimal-root chroot",
  );
}

const log = createLogger("container-events-test", "silent");
const NODE = "ce-node";
const SUBJECT = containerEventSubject(NODE);
/** Long enough that only a recheck (or a change) notices a new role. */
const NEVER_MS = 3_600_000;
/** Label on every container this file creates: the pid of the test process. */
const OWNER_LABEL = "psct.container-events.owner";
const OWNER = String(process.pid);

const prefix = `${testPrefix()}ce-`;
/** Short name → full id of this file's containers. */
const ids: Record<string, string> = {};

const docker = async (args: string[]): Promise<string> =>
  (await execOk([DOCKER, ...args], { timeoutMs: 60_000 })).trim();

/** Runs a docker command that changes a container's state. */
async function change(...args: string[]): Promise<void> {
  await docker(args);
}

/** The engine's time of the last `action` event of container `id` since `sinceMs`, ms. */
async function engineTime(id: string, action: string, sinceMs: number): Promise<number> {
  const out = await docker([
    "events",
    "--since",
    (sinceMs / 1000 - 1).toFixed(3),
    "--until",
    (Date.now() / 1000).toFixed(3),
    "--filter",
    `container=${id}`,
    "--filter",
    `event=${action}`,
    "--format",
    "{{.TimeNano}}",
  ]);
  const last = out
    .split("\n")
    .filter((l) => l !== "")
    .at(-1);
  if (last === undefined) throw new Error(`no ${action} event of ${id} in the engine`);
  return Math.floor(Number(last) / 1e6);
}

/** This file's short name of a container ("" for another's). */
const short = (name: string): string => (name.startsWith(prefix) ? name.slice(prefix.length) : "");
const ours = (c: Pick<ContainerInfo, "labels">): boolean => c.labels[OWNER_LABEL] === OWNER;

/** One container event as a subscriber reads it. */
interface Seen {
  id: string;
  /** Short name of this file's containers, "" for others. */
  name: string;
  image: string;
  state: string;
  timeMs: number;
  ours: boolean;
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
          name: short(c?.name ?? ""),
          image: c?.image ?? "",
          state: ev.event.value.action,
          timeMs: ev.time ? timestampMs(ev.time) : 0,
          ours: c !== undefined && ours(c),
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

/** "name:state" of this file's containers among `es`, sorted. */
const keys = (es: Seen[]): string[] =>
  es
    .filter((e) => e.ours)
    .map((e) => `${e.name}:${e.state}`)
    .sort();
const ourEvents = (es: Seen[]): Seen[] => es.filter((e) => e.ours);

/** Other Docker containers a cache would announce now (left in the engine by others). */
const others = (cache: ContainerCache): number =>
  cache
    .list()
    .filter((c) => c.runtime === "docker" && c.state !== "" && c.state !== "destroyed" && !ours(c))
    .length;

/**
 * What a cache handed out, each change with whether its publisher was the publisher then
 * (subscribed after the publisher, so it sees each change right after it, in the same turn).
 */
class Tally {
  readonly changes: { ev: ContainerEvent; publisher: boolean }[] = [];
  readonly off: () => void;

  constructor(cache: ContainerCache, publisher: () => boolean) {
    this.off = cache.subscribe((ev) => {
      this.changes.push({ ev, publisher: publisher() });
    });
  }

  get published(): number {
    return this.changes.filter((c) => c.publisher).length;
  }
  get skipped(): number {
    return this.changes.filter((c) => !c.publisher).length;
  }
  /** Whether a change of this file's container `name` to `state` came. */
  saw(name: string, state: string): boolean {
    return this.changes.some(
      (c) => c.ev.container.id === ids[name] && c.ev.state === state && ours(c.ev.container),
    );
  }
  /** "name:state:published|skipped" of this file's containers' changes, in order. */
  ours(): string[] {
    return this.changes
      .filter((c) => ours(c.ev.container))
      .map(
        (c) =>
          `${short(c.ev.container.name)}:${c.ev.state}:${c.publisher ? "published" : "skipped"}`,
      );
  }
}

describe.skipIf(SKIP)("container events against the Docker engine", () => {
  let engine: Engine | undefined;
  let nats: LocalNats | undefined;
  const buses: Bus[] = [];
  const caches: ContainerCache[] = [];
  const publishers: ContainerEventPublisher[] = [];
  const tallies: Tally[] = [];

  beforeAll(async () => {
    const t0 = performance.now();
    engine = await ensureEngine();
    await removeStale(OWNER_LABEL);
    await ensureBaseImage();
    const create = (name: string): Promise<string> =>
      docker([
        "create",
        "--name",
        `${prefix}${name}`,
        "--network",
        "none",
        "--label",
        `${OWNER_LABEL}=${OWNER}`,
        BASE_IMAGE,
        "sleep",
        "infinity",
      ]);
    for (const name of ["web", "db", "job", "fresh", "gone"]) ids[name] = await create(name);
    await change("start", `${prefix}web`, `${prefix}db`, `${prefix}job`, `${prefix}gone`);
    await change("pause", `${prefix}db`);
    await change("stop", "--time", "0", `${prefix}job`);
    nats = await startLocalNats({});
    console.log(
      `[container-events] engine ${engine.started ? "started" : "running"}, containers ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }, 600_000);

  // Each test's publishers, caches and connections end with it.
  afterEach(async () => {
    for (const t of tallies.splice(0)) t.off();
    for (const p of publishers.splice(0)) p.stop();
    for (const c of caches.splice(0)) c.stop();
    for (const b of buses.splice(0)) await b.close().catch(() => {});
  });

  afterAll(async () => {
    if (engine) {
      const names = Object.keys(ids).map((n) => `${prefix}${n}`);
      const r = await exec([DOCKER, "rm", "-f", ...names]);
      if (r.code !== 0 && !r.stderr.includes("No such container")) console.error(r.stderr);
    }
    await nats?.stop();
    await engine?.stop();
  }, 120_000);

  async function dial(name: string): Promise<Bus> {
    if (!nats) throw new Error("nats not started");
    const bus = await connectBus({ url: nats.url, name, log });
    buses.push(bus);
    return bus;
  }

  /**
   * A container cache on the engine's socket, as the enricher makes it, with the engine's
   * containers listed. Started right after the last change (usually within its second):
   * what the listing holds must not come again as changes (each test's tally of changes
   * is exact).
   */
  async function follow(): Promise<ContainerCache> {
    // The enricher's cache: the engine's default socket, /var/run/docker.sock.
    const cache = new ContainerCache();
    caches.push(cache);
    expect(cache.dockerPresent).toBe(true);
    await cache.start();
    expect(cache.apiErrors).toBe(0);
    return cache;
  }

  function publish(opts: Parameters<typeof publishContainerEvents>[0]): ContainerEventPublisher {
    const p = publishContainerEvents(opts);
    publishers.push(p);
    return p;
  }

  function tally(cache: ContainerCache, publisher: () => boolean): Tally {
    const t = new Tally(cache, publisher);
    tallies.push(t);
    return t;
  }

  test("container events - gaining the publisher role announces the Docker containers not destroyed, once; changes while not publisher are skipped and counted", async () => {
    const bus = await dial("ce-a");
    const sub = new Subscriber(bus.nc);
    await bus.nc.flush();
    const cache = await follow();
    expect(
      cache
        .list()
        .filter(ours)
        .map((c) => `${short(c.name)}:${c.state}:${c.image}`)
        .sort(),
    ).toEqual([
      `db:paused:${BASE_IMAGE}`,
      `fresh:created:${BASE_IMAGE}`,
      `gone:running:${BASE_IMAGE}`,
      `job:exited:${BASE_IMAGE}`,
      `web:running:${BASE_IMAGE}`,
    ]);
    // Destroyed (still retained), not announced.
    await change("rm", "-f", `${prefix}gone`);
    await waitFor(() => cache.byContainerId(ids.gone as string)?.state === "destroyed", {
      what: "destroyed container in the cache",
    });
    // A systemd unit and a Docker container the engine does not know (no state): not announced.
    expect(cache.lookup("/system.slice/nginx.service")).toMatchObject({ runtime: "systemd" });
    const unknown = "9f".repeat(32);
    expect(cache.lookup(`/system.slice/docker-${unknown}.scope`)).toMatchObject({ state: "" });
    await waitFor(() => cache.apiErrors === 1, { what: "the unknown container inspected" });
    expect(cache.byContainerId(unknown)).toMatchObject({ runtime: "docker", state: "" });

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
    const t = tally(cache, () => role);
    expect(await sub.settle([bus.nc])).toEqual([]);
    expect(await containerEventCounts(metrics)).toEqual({
      published: 0,
      announced: 0,
      skipped: t.skipped,
    });

    // Not the publisher: the change is seen and skipped.
    await change("start", `${prefix}job`);
    await waitFor(() => t.saw("job", "running"), { what: "job running in the cache" });
    expect(t.ours()).toEqual(["job:running:skipped"]);
    expect(await sub.settle([bus.nc])).toEqual([]);

    // Gains the role: each Docker container with its state now, stamped now.
    let announced = 0;
    const t0 = Date.now();
    role = true;
    announced += 4 + others(cache);
    pub.recheck();
    const first = await sub.settle([bus.nc]);
    expect(keys(first)).toEqual(["db:paused", "fresh:created", "job:running", "web:running"]);
    expect(first.find((e) => e.name === "web")).toMatchObject({
      id: ids.web,
      image: BASE_IMAGE,
    });
    expect(new Set(ourEvents(first).map((e) => e.id)).size).toBe(4);
    for (const e of ourEvents(first)) {
      expect(e.timeMs).toBeGreaterThanOrEqual(t0);
      expect(e.timeMs).toBeLessThanOrEqual(Date.now());
    }
    // Still the publisher: nothing more of ours.
    pub.recheck();
    expect(keys(await sub.settle([bus.nc]))).toEqual([]);

    // A change now is published, with the engine's time.
    const pausing = Date.now();
    await change("pause", `${prefix}web`);
    await waitFor(() => t.saw("web", "paused"), { what: "web paused in the cache" });
    const pausedAt = await engineTime(ids.web as string, "pause", pausing);
    expect(ourEvents(await sub.settle([bus.nc]))).toEqual([
      {
        id: ids.web as string,
        name: "web",
        image: BASE_IMAGE,
        state: "paused",
        timeMs: pausedAt,
        ours: true,
      },
    ]);

    // Loses the role: skipped (noticed by the change itself), then gains it again.
    role = false;
    await change("unpause", `${prefix}web`);
    await waitFor(() => t.saw("web", "running"), { what: "web running again in the cache" });
    pub.recheck();
    expect(keys(await sub.settle([bus.nc]))).toEqual([]);
    role = true;
    announced += 4 + others(cache);
    pub.recheck();
    expect(keys(await sub.settle([bus.nc]))).toEqual([
      "db:paused",
      "fresh:created",
      "job:running",
      "web:running",
    ]);
    expect(t.ours()).toEqual([
      "job:running:skipped",
      "web:paused:published",
      "web:running:skipped",
    ]);
    // With no other container changing: { published: 1, announced: 8, skipped: 2 }.
    expect(pub.stats).toEqual({ published: t.published, announced, skipped: t.skipped });
    expect(await containerEventCounts(metrics)).toEqual({ ...pub.stats });
  }, 20_000);

  test("container events - a gain noticed by a change announces the others, then sends the change; the periodic check notices a gain alone", async () => {
    const bus = await dial("ce-b");
    const sub = new Subscriber(bus.nc);
    await bus.nc.flush();
    const cache = await follow();
    // The role comes with db's change: the cache has db running when it hands the change
    // out, and not before (another container's change before it is skipped).
    let role = (): boolean => cache.byContainerId(ids.db as string)?.state === "running";
    const pub = publish({
      nc: bus.nc,
      node: NODE,
      containers: cache,
      publisher: () => role(),
      checkMs: NEVER_MS,
    });
    const t = tally(cache, () => role());
    expect(pub.stats.announced).toBe(0);
    const unpausing = Date.now();
    await change("unpause", `${prefix}db`);
    await waitFor(() => t.saw("db", "running"), { what: "db running in the cache" });
    const at = await engineTime(ids.db as string, "unpause", unpausing);
    const got = await sub.settle([bus.nc]);
    // The changed container once, as the change (the last one, with the engine's time).
    expect(keys(got)).toEqual(["db:running", "fresh:created", "job:running", "web:running"]);
    expect(ourEvents(got).at(-1)).toMatchObject({ name: "db", state: "running", timeMs: at });
    expect(t.ours()).toEqual(["db:running:published"]);
    // With no other container changing: { published: 1, announced: 3, skipped: 0 }.
    expect(pub.stats).toEqual({
      published: t.published,
      announced: 3 + others(cache),
      skipped: t.skipped,
    });
    let on = true;
    role = () => on;

    // Without a change nor a recheck: the periodic check.
    const polled = publish({
      nc: bus.nc,
      node: NODE,
      containers: cache,
      publisher: () => role(),
      checkMs: 50,
    });
    const once = 4 + others(cache);
    expect(polled.stats.announced).toBe(once);
    // Lost and regained at once (no change can come in between): only a check notices.
    on = false;
    polled.recheck();
    on = true;
    // Ours, at least (another container's change may notice the gain first: that one is
    // then sent as its change).
    await waitFor(() => polled.stats.announced >= once + 4, { what: "periodic check announces" });
    if (others(cache) === 0) expect(polled.stats.announced).toBe(8);
    // The first publisher, never rechecked and without a change, announced nothing more.
    expect(pub.stats.announced).toBe(3 + others(cache));
    const four = ["db:running", "fresh:created", "job:running", "web:running"];
    expect(keys(await sub.settle([bus.nc]))).toEqual([...four, ...four].sort());
  }, 20_000);

  test("container events - replicas over NATS: one publishes; when the holder of partition 0 leaves or dies, the next holder announces and publishes", async () => {
    const TTL = 900;
    interface Replica {
      bus: Bus;
      own: PartitionOwnership;
      cache: ContainerCache;
      pub: ContainerEventPublisher;
      tally: Tally;
      metrics: Metrics;
      off: () => void;
    }
    const replicas: Replica[] = [];
    const watcher = await dial("ce-watch");
    const sub = new Subscriber(watcher.nc);
    await watcher.nc.flush();
    const bucket = `ce-test-leases-${process.pid}`;
    // As the enricher wires them: publisher = holds(0), rechecked on ownership changes of 0.
    const join = async (name: string): Promise<Replica> => {
      const bus = await dial(name);
      const kv = await openLeaseBucket(bus, TTL, bucket);
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
      const cache = await follow();
      const metrics = createMetrics("enricher");
      const pub = publish({
        nc: bus.nc,
        node: NODE,
        containers: cache,
        publisher: () => own.holds(0),
        metrics,
        checkMs: NEVER_MS,
      });
      const off = own.onChange((_change, p) => {
        if (p === 0) pub.recheck();
      });
      const r = { bus, own, cache, pub, tally: tally(cache, () => own.holds(0)), metrics, off };
      replicas.push(r);
      return r;
    };
    /** A replica's counters: exported as counted, its changes as its cache handed them out. */
    const checkCounters = async (r: Replica, announced: number): Promise<void> => {
      expect(r.pub.stats).toEqual({
        published: r.tally.published,
        announced,
        skipped: r.tally.skipped,
      });
      expect(await containerEventCounts(r.metrics)).toEqual({ ...r.pub.stats });
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
      const once = 4 + others(first.cache);
      expect(first.pub.stats.announced).toBe(once);
      expect(second.pub.stats.announced).toBe(0);
      const conns = [a.bus.nc, b.bus.nc];
      expect(keys(await sub.settle(conns))).toEqual([
        "db:running",
        "fresh:created",
        "job:running",
        "web:running",
      ]);

      // One change, both caches see it, one publishes it.
      await change("start", `${prefix}fresh`);
      await waitFor(
        () => first.tally.saw("fresh", "running") && second.tally.saw("fresh", "running"),
        {
          what: "both caches see fresh running",
        },
      );
      expect(first.tally.ours()).toEqual(["fresh:running:published"]);
      expect(second.tally.ours()).toEqual(["fresh:running:skipped"]);
      expect(keys(await sub.settle(conns))).toEqual(["fresh:running"]);

      // The holder of partition 0 leaves: the other gains it and announces at once.
      const t0 = Date.now();
      await first.own.stop();
      await waitFor(() => second.pub.stats.announced > 0, {
        timeoutMs: 5000,
        intervalMs: 10,
        what: "new holder announces",
      });
      console.log(`[container-events] new publisher announced ${Date.now() - t0} ms after leave`);
      expect(second.own.holds(0)).toBe(true);
      const secondOnce = 4 + others(second.cache);
      expect(second.pub.stats.announced).toBe(secondOnce);
      expect(keys(await sub.settle(conns))).toEqual([
        "db:running",
        "fresh:running",
        "job:running",
        "web:running",
      ]);

      await change("stop", "--time", "0", `${prefix}job`);
      await waitFor(() => first.tally.saw("job", "exited") && second.tally.saw("job", "exited"), {
        what: "both caches see job exited",
      });
      expect(second.tally.ours()).toEqual(["fresh:running:skipped", "job:exited:published"]);
      expect(first.tally.ours()).toEqual(["fresh:running:published", "job:exited:skipped"]);
      expect(keys(await sub.settle(conns))).toEqual(["job:exited"]);
      // With no other container changing: { published: 1, announced: 4, skipped: 1 } each.
      await checkCounters(first, once);
      await checkCounters(second, secondOnce);

      // A third joins (it takes partition 1); the holder of 0 is then cut off, as if killed:
      // its lease expires after one TTL and the third takes it and announces.
      const third = await join("ce-r3");
      await waitFor(() => second.own.owned().join() === "0" && third.own.owned().join() === "1", {
        what: "partitions shared with the third",
      });
      expect(third.pub.stats.announced).toBe(0);
      const t1 = Date.now();
      await second.bus.nc.close();
      await waitFor(() => third.pub.stats.announced > 0, {
        timeoutMs: 6000,
        intervalMs: 10,
        what: "third announces after the holder died",
      });
      console.log(
        `[container-events] publisher died; the next announced after ${Date.now() - t1} ms (lease TTL ${TTL} ms)`,
      );
      const thirdOnce = 4 + others(third.cache);
      expect(third.pub.stats.announced).toBe(thirdOnce);
      expect(keys(await sub.settle([third.bus.nc]))).toEqual([
        "db:running",
        "fresh:running",
        "job:exited",
        "web:running",
      ]);
      await change("pause", `${prefix}web`);
      await waitFor(
        () =>
          third.tally.saw("web", "paused") &&
          second.tally.saw("web", "paused") &&
          first.tally.saw("web", "paused"),
        { what: "the three caches see web paused" },
      );
      expect(third.tally.ours()).toEqual(["web:paused:published"]);
      expect(second.tally.ours().at(-1)).toBe("web:paused:skipped");
      expect(first.tally.ours().at(-1)).toBe("web:paused:skipped");
      expect(second.own.holds(0)).toBe(false);
      expect(keys(await sub.settle([third.bus.nc]))).toEqual(["web:paused"]);
      // With no other container changing: { published: 1, announced: 4, skipped: 0 }.
      await checkCounters(third, thirdOnce);
      await checkCounters(first, once);
    } finally {
      for (const r of replicas) {
        r.off();
        await r.own.stop();
      }
    }
  }, 30_000);

  test("container events - a signal the container survives is no change; stop is one change, after the listing nothing repeats", async () => {
    const cache = await follow();
    const t = tally(cache, () => true);
    await change("unpause", `${prefix}web`);
    await waitFor(() => t.saw("web", "running"), { what: "web running in the cache" });
    // HUP and WINCH: `kill` events, the sleep lives on (docker inspect says running).
    await change("kill", "-s", "WINCH", `${prefix}web`);
    await change("kill", "-s", "HUP", `${prefix}web`);
    expect(await docker(["inspect", "-f", "{{.State.Status}}", `${prefix}web`])).toBe("running");
    // A real change after them: the cache's next change of web is this one.
    await change("pause", `${prefix}web`);
    await waitFor(() => t.saw("web", "paused"), { what: "web paused in the cache" });
    expect(cache.byContainerId(ids.web as string)?.state).toBe("paused");
    await change("unpause", `${prefix}web`);
    // stop: kill, die, stop from the engine; one change to exited.
    await change("stop", "--time", "0", `${prefix}fresh`);
    await waitFor(() => t.saw("fresh", "exited"), { what: "fresh exited in the cache" });
    expect(await docker(["inspect", "-f", "{{.State.Status}}", `${prefix}fresh`])).toBe("exited");
    expect(t.ours()).toEqual([
      "web:running:published",
      "web:paused:published",
      "web:running:published",
      "fresh:exited:published",
    ]);
  }, 20_000);
});
