/**
 * Faults under the run command (scripts/up.ts on the demo topology): kill -9 of the
 * enricher and of the observer. Each service is restarted on its own, the restart is
 * announced and counted, status is degraded until the service is back, and the
 * terminal's flow stream carries on.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { runOk, waitFor } from "@periscope/devstack";
import { testPrefix } from "./harness.ts";
import { startUp, type UpProcess } from "./up-process.ts";

let up: UpProcess;
const lineCount = (): number => up.stdout().split("\n").length - 1;

beforeAll(async () => {
  up = await startUp(testPrefix());
  // The demo traffic's flows reach the terminal stream.
  await waitFor(() => lineCount() >= 10, { timeoutMs: 30_000, what: "flows on stdout" });
}, 90_000);

afterAll(async () => {
  await up?.stop();
}, 60_000);

test("faults - kill -9 of the enricher: restarted with backoff, announced, status degraded until it is back", async () => {
  const before = up.servicePids();
  const victim = before.enricher ?? 0;
  expect(victim).toBeGreaterThan(0);
  const killedAt = Date.now();
  process.kill(victim, "SIGKILL");

  let degradedAt: number | undefined;
  let problem = "";
  let okAt: number | undefined;
  let beatingAt: number | undefined;
  await waitFor(
    async () => {
      const s = await up.status();
      const p = s.presence;
      if (p?.state === "degraded" && degradedAt === undefined) {
        degradedAt = Date.now();
        problem = p.problems.join("\n");
      }
      if (beatingAt === undefined && (up.servicePids().enricher ?? victim) !== victim) {
        beatingAt = Date.now();
      }
      if (degradedAt !== undefined && p?.state === "ok") okAt = Date.now();
      return okAt !== undefined;
    },
    { timeoutMs: 30_000, intervalMs: 50, what: "status degraded, then ok again" },
  );
  expect(problem).toMatch(/^enricher: no live instance \(flows are not being decoded\)/);
  expect(up.stderr()).toContain("enricher exited (signal SIGKILL); restarting in 1s (restart #1)");
  const replacement = up.servicePids().enricher;
  expect(up.stderr()).toContain(`enricher restarted (pid ${replacement})`);

  // Flows are decoded again: new lines on the same stdout.
  const lines = lineCount();
  await waitFor(() => lineCount() > lines + 5, { timeoutMs: 20_000, what: "new flows" });
  const others = up.servicePids();
  for (const s of ["observer", "collector", "recorder"]) expect(others[s]).toBe(before[s] ?? -1);
  console.error(
    `enricher kill -9: degraded seen after ${(degradedAt ?? 0) - killedAt} ms, new instance beating after ${(beatingAt ?? 0) - killedAt} ms, ok again after ${(okAt ?? 0) - killedAt} ms`,
  );
}, 60_000);

test("faults - kill -9 of the observer: only the observer restarts and the flow stream resumes", async () => {
  const before = up.servicePids();
  const victim = before.observer ?? 0;
  expect(victim).toBeGreaterThan(0);
  const linesBefore = lineCount();
  const killedAt = Date.now();
  process.kill(victim, "SIGKILL");

  await up.waitForStderr(/observer exited \(signal SIGKILL\); restarting in 1s \(restart #1\)/);
  await up.waitForStderr(/observe \(via [^)]+\): connection lost/);
  await up.waitForStderr(/observe \(via [^)]+\): reconnected/, 30_000);
  const reconnectedAt = Date.now();
  const linesAtReconnect = lineCount();
  await waitFor(() => lineCount() > linesAtReconnect + 5, {
    timeoutMs: 20_000,
    what: "new flows after the reconnect",
  });
  const resumedAt = Date.now();
  expect(lineCount()).toBeGreaterThan(linesBefore);

  const after = up.servicePids();
  expect(after.observer).not.toBe(victim);
  for (const s of ["enricher", "collector", "recorder"]) expect(after[s]).toBe(before[s] ?? -1);
  expect(up.stderr().match(/enricher exited/g)?.length).toBe(1); // the kill of the test before
  expect(up.stderr()).not.toMatch(/(collector|recorder|observe) exited/);
  expect((await up.status()).presence?.state).toBe("ok");
  console.error(
    `observer kill -9: stream reconnected after ${reconnectedAt - killedAt} ms, new flows after ${resumedAt - killedAt} ms`,
  );
}, 60_000);

test("faults - kill -9 of the owned nats-server: restarted on the same port and store, flows resume", async () => {
  const port = new URL(up.natsUrl.replace(/^nats:/, "http:")).port;
  const ss = await runOk(["ss", "-Hltnp", `sport = :${port}`]);
  const victim = Number(/pid=(\d+)/.exec(ss)?.[1] ?? 0);
  expect(victim).toBeGreaterThan(0);
  const before = up.servicePids();
  const killedAt = Date.now();
  process.kill(victim, "SIGKILL");
  await up.waitForStderr(/nats-server exited; restarting in 1s \(restart #1\)/);
  await up.waitForStderr(/nats-server restarted on nats:\/\/127\.0\.0\.1:\d+/);
  const restartedAt = Date.now();
  const lines = lineCount();
  await waitFor(() => lineCount() > lines + 5, {
    timeoutMs: 30_000,
    what: "flows after the broker restart",
  });
  const resumedAt = Date.now();
  // The services reconnected; none of them was restarted.
  expect(up.servicePids()).toEqual(before);
  console.error(
    `nats-server kill -9: restarted after ${restartedAt - killedAt} ms, flows on stdout again after ${resumedAt - killedAt} ms`,
  );
}, 60_000);
