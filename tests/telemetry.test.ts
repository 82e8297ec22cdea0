/**
 * Telemetry/Subscribe end to end: real nats-server, collector (process program on the
 * cgroup root), enricher and observer as child processes; real processes exec and exit
 * while subscriptions with filters, throttle and limit read the observer's stream.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { cgroupV2Root } from "@periscope/bpf";
import { waitFor } from "@periscope/devstack";
import { telemetryV1 } from "@periscope/proto";
import { ROOT, type Stack, startStack, testPrefix } from "./harness.ts";
import {
  type OpenSubscription,
  openSubscription,
  type SubscriptionInit,
  waitSubscriptions,
} from "./telemetry-subscription.ts";

const { EventKind, LostReason, SubscriptionSchema } = telemetryV1;
type TelemetryEvent = telemetryV1.TelemetryEvent;

const NODE = "tel-1";
let stack: Stack | undefined;
let dir = "";
let client: ReturnType<typeof createClient<typeof telemetryV1.Telemetry>>;

const st = (): Stack => {
  if (!stack) throw new Error("stack not started");
  return stack;
};

/** A copy of /bin/false under a name no other process has (exits with 1). */
function markerBinary(name: string): string {
  const path = join(dir, name);
  copyFileSync("/bin/false", path);
  chmodSync(path, 0o755);
  return path;
}

/** Runs `bin arg` to its end; returns its pid. */
async function run(bin: string, arg: string): Promise<number> {
  const p = Bun.spawn([bin, arg], { stdout: "ignore", stderr: "ignore" });
  await p.exited;
  return p.pid;
}

/** Opens a subscription and reads it in the background until it ends or `stop()`. */
const open = (sub: SubscriptionInit): OpenSubscription => openSubscription(client, sub);

/** Waits until the observer counts `n` open subscriptions. */
const subscriptions = (n: number): Promise<void> => waitSubscriptions(st(), n);

const lostCount = (evs: TelemetryEvent[], reason: telemetryV1.LostReason): number =>
  evs.reduce(
    (n, e) =>
      n +
      (e.event.case === "lost" && e.event.value.reason === reason
        ? Number(e.event.value.count)
        : 0),
    0,
  );
const ofCase = (evs: TelemetryEvent[], c: string) => evs.filter((e) => e.event.case === c);

/**
 * The kernel reports pids of the initial PID namespace. The minimal-root check runs the
 * suite in a PID namespace of its own, where the pids a test sees differ from those, so
 * the tests that match processes by pid run only outside it.
 */
const OWN_PID_NS = process.env.PERISCOPE_TEST_IN_MINIMAL_ROOT === "1";
if (OWN_PID_NS) {
  console.log(
    "SKIP pid-matching telemetry tests: PERISCOPE_TEST_IN_MINIMAL_ROOT=1 runs in its own PID namespace",
  );
}
/** A test that matches processes by pid. */
const pidTest = OWN_PID_NS ? test.skip : test;

describe("telemetry subscriptions", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "psct-tel-"));
    stack = await startStack({
      prefix: testPrefix(),
      nodes: [{ name: NODE, pods: ["frontend"] }],
      env: { collector: { PERISCOPE_PROCESS_EVENTS: "on" } },
    });
    // The process program is loaded and its frames reach NATS before the tests count.
    await waitFor(
      async () => {
        await run("/bin/true", "probe");
        return (
          (await st().metric(`collector-${NODE}`, "periscope_collector_process_records_total", {
            kind: "exec",
          })) > 0
        );
      },
      { timeoutMs: 20_000, what: "collector publishing process records" },
    );
    client = createClient(
      telemetryV1.Telemetry,
      createGrpcTransport({ baseUrl: `http://${st().observerAddr}` }),
    );
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  pidTest(
    "exec and exit of the filtered binary, with pid, args, uid and exit code; others not delivered",
    async () => {
      const bin = markerBinary("psct-tel-exec");
      const other = markerBinary("psct-tel-other");
      const s = open({
        events: [EventKind.PROCESS_EXEC, EventKind.PROCESS_EXIT],
        processes: [{ binary: "psct-tel-exec", uid: 0 }],
      });
      const direct = st().bus.nc.subscribe(`periscope.telemetry.${NODE}.exec`);
      const directExecs: TelemetryEvent[] = [];
      (async () => {
        for await (const m of direct)
          directExecs.push(fromBinary(telemetryV1.TelemetryEventSchema, m.data));
      })();
      try {
        await subscriptions(1);
        const pids: number[] = [];
        for (let i = 0; i < 5; i++) {
          pids.push(await run(bin, `arg-${i}`));
          await run(other, "x");
        }
        await waitFor(() => ofCase(s.events, "exit").length >= 5, {
          timeoutMs: 15_000,
          what: "5 exits",
        });
        const execs = ofCase(s.events, "exec");
        const exits = ofCase(s.events, "exit");
        expect(execs.length).toBe(5);
        expect(exits.length).toBe(5);
        for (const [i, pid] of pids.entries()) {
          const ex = execs.find(
            (e) => e.event.case === "exec" && e.event.value.process?.tgid === pid,
          );
          if (ex?.event.case !== "exec") throw new Error(`no exec of pid ${pid}`);
          const p = ex.event.value.process;
          expect(p?.binary).toBe(bin);
          expect(p?.args).toEqual([bin, `arg-${i}`]);
          expect(p?.uid).toBe(0);
          expect(p?.startTimeNs).toBeGreaterThan(0n);
          expect(p?.nsPid).toBe(pid); // a host process: the same number in its namespace
          expect(ex.nodeName).toBe(NODE);
          expect(Math.abs(Number(ex.time?.seconds) * 1000 - Date.now())).toBeLessThan(60_000);
          const exit = exits.find(
            (e) => e.event.case === "exit" && e.event.value.process?.tgid === pid,
          );
          if (exit?.event.case !== "exit") throw new Error(`no exit of pid ${pid}`);
          expect(exit.event.value.code).toBe(1);
          expect(exit.event.value.signal).toBe(0);
          expect(exit.event.value.process?.binary).toBe(bin); // from the exec, by (tgid, start)
          expect(exit.event.value.process?.startTimeNs).toBe(p?.startTimeNs ?? 0n);
        }
        const seen = s.events.map((e) =>
          e.event.case === "exec" || e.event.case === "exit" ? e.event.value.process?.binary : "",
        );
        expect(seen.filter((b) => b === other)).toEqual([]);
        // Direct NATS subscribers get the same exec events.
        await waitFor(
          () =>
            directExecs.filter(
              (e) => e.event.case === "exec" && e.event.value.process?.binary === bin,
            ).length === 5,
          {
            timeoutMs: 10_000,
            what: "5 execs on periscope.telemetry.<node>.exec",
          },
        );
      } finally {
        direct.unsubscribe();
        await s.stop();
      }
      await subscriptions(0);
    },
    60_000,
  );

  test("throttle: events over the rate are reported lost, delivered + lost = all", async () => {
    const bin = markerBinary("psct-tel-thr");
    const s = open({
      events: [EventKind.PROCESS_EXEC],
      processes: [{ binary: `${dir}/psct-tel-thr` }],
      throttle: { events: 2, interval: { seconds: 4n } },
    });
    try {
      await subscriptions(1);
      for (let i = 0; i < 10; i++) await run(bin, String(i));
      await waitFor(
        () => ofCase(s.events, "exec").length + lostCount(s.events, LostReason.THROTTLED) === 10,
        { timeoutMs: 20_000, what: "10 execs delivered or throttled" },
      );
      const delivered = ofCase(s.events, "exec").length;
      expect(delivered).toBeGreaterThanOrEqual(2);
      expect(delivered).toBeLessThanOrEqual(6);
      expect(lostCount(s.events, LostReason.THROTTLED)).toBe(10 - delivered);
    } finally {
      await s.stop();
    }
  }, 40_000);

  test("limit: the stream ends by itself after N events", async () => {
    const bin = markerBinary("psct-tel-lim");
    const s = open({
      events: [EventKind.PROCESS_EXEC],
      processes: [{ binary: "psct-tel-lim" }],
      limit: 3n,
    });
    try {
      await subscriptions(1);
      for (let i = 0; i < 6; i++) await run(bin, String(i));
      await waitFor(() => s.ended(), { timeoutMs: 15_000, what: "stream ended at the limit" });
      expect(s.error()).toBeUndefined();
      expect(ofCase(s.events, "exec").length).toBe(3);
    } finally {
      await s.stop();
    }
    await subscriptions(0);
  }, 30_000);

  pidTest(
    "periscope events: compact lines and -o json, ending at --limit",
    async () => {
      const bin = markerBinary("psct-tel-cli");
      for (const output of ["compact", "json"]) {
        const cli = Bun.spawn(
          [
            "bun",
            "run",
            join(ROOT, "cli/src/main.ts"),
            "events",
            "--server",
            st().observerAddr,
            "-t",
            "exec",
            "--binary",
            "psct-tel-cli",
            "--limit",
            "2",
            "-o",
            output,
          ],
          { stdout: "pipe", stderr: "pipe" },
        );
        try {
          await subscriptions(1);
          const pids = [await run(bin, "one"), await run(bin, "two")];
          const timer = setTimeout(() => cli.kill("SIGKILL"), 15_000);
          const code = await cli.exited;
          clearTimeout(timer);
          const lines = (await new Response(cli.stdout).text()).trim().split("\n");
          expect(code).toBe(0);
          expect(lines.length).toBe(2);
          if (output === "compact") {
            expect(lines[0]).toContain(` ${NODE} exec `);
            expect(lines[0]).toContain(`psct-tel-cli[${pids[0]}] uid=0 ${bin} one`);
            expect(lines[1]).toContain(`psct-tel-cli[${pids[1]}]`);
          } else {
            const ev = JSON.parse(lines[1] ?? "{}");
            expect(ev.exec.process.tgid).toBe(pids[1]);
            expect(ev.exec.process.args).toEqual([bin, "two"]);
          }
        } finally {
          if (cli.exitCode === null) cli.kill("SIGKILL");
          await cli.exited;
        }
        await subscriptions(0);
      }
    },
    60_000,
  );

  pidTest(
    "container filters: a process in a container's cgroup, the container's lifecycle events",
    async () => {
      const id = Array.from({ length: 64 }, (_, i) => "0123456789abcdef"[(i * 7 + 3) % 16]).join(
        "",
      );
      const parent = join(cgroupV2Root(), `psct-tel-${Math.random().toString(36).slice(2, 7)}`);
      const cg = join(parent, `docker-${id}.scope`);
      mkdirSync(cg, { recursive: true });
      const bin = markerBinary("psct-tel-ct");
      const s = open({
        events: [EventKind.PROCESS_EXEC, EventKind.CONTAINER],
        containers: [{ id: id.slice(0, 12) }, { name: "psct-web-*", image: "psct/*" }],
      });
      try {
        await subscriptions(1);
        // As the enricher's container cache publishes a lifecycle change.
        const container = {
          id,
          name: "psct-web-1",
          image: "psct/base:1",
          runtime: "docker",
          state: "running",
        };
        const publish = (name: string, action: string) =>
          st().bus.nc.publish(
            `periscope.telemetry.${NODE}.container`,
            toBinary(
              telemetryV1.TelemetryEventSchema,
              create(telemetryV1.TelemetryEventSchema, {
                time: timestampNow(),
                nodeName: NODE,
                event: { case: "container", value: { action, container: { ...container, name } } },
              }),
            ),
          );
        publish("psct-web-1", "running");
        publish("psct-db-1", "running"); // renamed: matches by id prefix only
        // A process started inside the container's cgroup.
        const sh = Bun.spawn([
          "/bin/sh",
          "-c",
          `echo $$ > ${cg}/cgroup.procs && exec ${bin} in-ct`,
        ]);
        await sh.exited;
        await run(bin, "on-host");
        await waitFor(
          () => ofCase(s.events, "exec").length >= 1 && ofCase(s.events, "container").length >= 2,
          {
            timeoutMs: 15_000,
            what: "exec in the container and its events",
          },
        );
        const execs = ofCase(s.events, "exec");
        expect(execs.length).toBe(1);
        const ex = execs[0];
        if (ex?.event.case !== "exec") throw new Error("no exec");
        expect(ex.event.value.process?.tgid).toBe(sh.pid);
        expect(ex.event.value.process?.args).toEqual([bin, "in-ct"]);
        expect(ex.event.value.process?.container?.id).toBe(id);
        expect(ex.event.value.process?.container?.runtime).toBe("docker");
        expect(ex.event.value.process?.container?.name).toBe("psct-db-1"); // the last event named it
        const names = ofCase(s.events, "container").map((e) =>
          e.event.case === "container" ? e.event.value.container?.name : "",
        );
        expect(names).toEqual(["psct-web-1", "psct-db-1"]);
      } finally {
        await s.stop();
        await waitFor(
          () => {
            try {
              rmdirSync(cg);
              rmdirSync(parent);
              return true;
            } catch {
              return false;
            }
          },
          { timeoutMs: 10_000, what: "test cgroup removed" },
        );
      }
    },
    40_000,
  );

  test("flows of the node through a subscription", async () => {
    const topo = st().topology;
    const src = topo.pod("frontend").ipv4;
    const dst = topo.pod("backend").ipv4;
    const s = open({ events: [EventKind.FLOW, EventKind.DROP], nodeNames: [NODE] });
    try {
      await subscriptions(1);
      await waitFor(
        async () => {
          await topo.exec("frontend", ["ping", "-c", "1", "-W", "1", dst]);
          return ofCase(s.events, "flow").some(
            (e) => e.event.case === "flow" && e.event.value.IP?.source === src,
          );
        },
        { timeoutMs: 20_000, what: "a flow from frontend" },
      );
      for (const e of s.events) {
        expect(e.nodeName).toBe(NODE);
        expect(["flow", "drop", "lost"]).toContain(e.event.case ?? "");
      }
    } finally {
      await s.stop();
    }
    await subscriptions(0);
  }, 40_000);

  test("a malformed subscription is InvalidArgument naming the field", async () => {
    const bad: [Parameters<typeof create<typeof SubscriptionSchema>>[1], string][] = [
      [{ events: [99 as telemetryV1.EventKind] }, "events[0]"],
      [{ throttle: { events: 0, interval: { seconds: 1n } } }, "throttle.events"],
      [{ throttle: { events: 5 } }, "throttle.interval"],
      [{ containers: [{ id: "not-hex" }] }, "containers[0].id"],
      [{ processes: [{ binary: "x" }, {}] }, "processes[1]"],
      [{ since: { seconds: 200n }, until: { seconds: 100n } }, "until"],
    ];
    for (const [sub, field] of bad) {
      const s = open(sub);
      await waitFor(() => s.ended(), { timeoutMs: 5000, what: `${field} rejected` });
      const err = ConnectError.from(s.error());
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage.startsWith(`${field}:`)).toBe(true);
    }
    expect(await st().metric("observer", "periscope_observer_telemetry_subscriptions")).toBe(0);
  }, 30_000);
});
