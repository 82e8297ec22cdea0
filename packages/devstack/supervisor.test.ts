import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DevstackError,
  formatDelay,
  RestartBackoff,
  Supervisor,
  type SupervisorEvent,
  WaitAbortedError,
  WaitTimeoutError,
  waitFor,
} from "./index.ts";

describe("restart backoff", () => {
  test.each([
    [
      "doubles from the initial delay up to the cap",
      [0, 0, 0, 0, 0, 0],
      [1000, 2000, 4000, 8000, 16000, 30000],
    ],
    [
      "starts over after a run that lasted resetAfterMs",
      [0, 0, 0, 10_000, 0],
      [1000, 2000, 4000, 1000, 2000],
    ],
    ["keeps growing while runs stay short", [9_999, 9_999, 9_999], [1000, 2000, 4000]],
  ])("backoff - %s", (_name, upMs, want) => {
    const b = new RestartBackoff();
    expect(upMs.map((up) => b.next(up))).toEqual(want);
  });

  test("backoff - honours a custom policy", () => {
    const b = new RestartBackoff({ initialMs: 100, factor: 3, maxMs: 1000, resetAfterMs: 500 });
    expect([0, 0, 0, 0, 600, 0].map((up) => b.next(up))).toEqual([100, 300, 900, 1000, 100, 300]);
  });

  test.each([
    [null, true],
    [1, true],
    [0, true],
    [2, false],
  ] as const)("backoff - exit code %p restarts: %p", (code, want) => {
    expect(new RestartBackoff().shouldRestart(code)).toBe(want);
  });

  test("backoff - a clean exit is final when restartOnSuccess is off", () => {
    expect(new RestartBackoff({ restartOnSuccess: false }).shouldRestart(0)).toBe(false);
  });

  test.each([
    [250, "250ms"],
    [1000, "1s"],
    [1500, "1.5s"],
    [30_000, "30s"],
  ])("backoff - formatDelay(%p) is %p", (ms, want) => {
    expect(formatDelay(ms)).toBe(want);
  });
});

describe("supervisor", () => {
  const supervisors: Supervisor[] = [];
  const make = (...args: ConstructorParameters<typeof Supervisor>): Supervisor => {
    const s = new Supervisor(...args);
    supervisors.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of supervisors.splice(0)) await s.stop(1000);
  });

  test("supervisor - forwards stdout and stderr line by line with the name prefix", async () => {
    const lines: string[] = [];
    const sup = make({ sink: (l) => lines.push(l) });
    const p = sup.start("echoer", ["sh", "-c", "echo one; echo two >&2; printf three"]);
    expect(await p.exited).toBe(0);
    expect(lines.sort()).toEqual(["[echoer] one", "[echoer] three", "[echoer] two"]);
    expect(sup.exitCodes()).toEqual({ echoer: 0 });
  });

  test("supervisor - passes extra environment variables", async () => {
    const sup = make({ sink: () => {} });
    const p = sup.start("env", ["sh", "-c", 'echo "v=$PSCT_VALUE"'], { env: { PSCT_VALUE: "42" } });
    expect(await p.waitForLine(/^v=/)).toBe("v=42");
  });

  test("supervisor - stop sends SIGTERM and collects exit codes", async () => {
    const sup = make({ sink: () => {} });
    const p = sup.start("trap", [
      "sh",
      "-c",
      'trap "echo bye; exit 7" TERM; echo up; while :; do sleep 0.05; done',
    ]);
    await p.waitForLine(/^up$/);
    expect(await sup.stop()).toEqual({ trap: 7 });
    expect(p.lines()).toContain("bye");
  });

  test("supervisor - stop falls back to SIGKILL after the grace period", async () => {
    const sup = make({ sink: () => {}, stopTimeoutMs: 200 });
    const p = sup.start("stubborn", [
      "sh",
      "-c",
      'trap "" TERM; echo up; while :; do sleep 0.05; done',
    ]);
    await p.waitForLine(/^up$/);
    const started = Date.now();
    await sup.stop();
    expect(p.signalCode()).toBe("SIGKILL");
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
  });

  test("supervisor - writes to a log file when asked", async () => {
    const dir = mkdtempSync(join(tmpdir(), "psct-sup-"));
    try {
      const logFile = join(dir, "out.log");
      const sup = make({ logFile });
      await sup.start("filed", ["echo", "to file"]).exited;
      expect(readFileSync(logFile, "utf8")).toBe("[filed] to file\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("supervisor - refuses a duplicate running name and an unknown stop", async () => {
    const sup = make({ sink: () => {} });
    const p = sup.start("dup", ["sleep", "30"]);
    expect(() => sup.start("dup", ["sleep", "30"])).toThrow(DevstackError);
    await expect(sup.stopOne("missing")).rejects.toThrow(DevstackError);
    await sup.stopOne("dup");
    expect(p.signalCode()).toBe("SIGTERM");
  });

  test("supervisor - waitForLine fails fast when the process exits first", async () => {
    const sup = make({ sink: () => {} });
    const p = sup.start("quitter", ["sh", "-c", "echo nope; exit 3"]);
    const started = Date.now();
    await expect(p.waitForLine(/never/, 5000)).rejects.toThrow(WaitAbortedError);
    expect(Date.now() - started).toBeLessThan(4000);
    expect(await p.exited).toBe(3);
  });

  test("supervisor - restarts a killed process with backoff, counts and announces it", async () => {
    const notices: string[] = [];
    const events: SupervisorEvent[] = [];
    const sup = make({
      sink: () => {},
      notice: (l) => notices.push(l),
      onEvent: (e) => events.push(e),
    });
    const first = sup.start("svc", ["sh", "-c", "echo up; exec sleep 30"], {
      restart: { initialMs: 100, maxMs: 1000 },
    });
    await first.waitForLine(/^up$/);
    first.kill("SIGKILL");
    await waitFor(() => sup.get("svc")?.pid !== first.pid && sup.get("svc")?.exitCode() === null, {
      timeoutMs: 5000,
    });
    expect(notices).toEqual(["svc exited (signal SIGKILL); restarting in 100ms (restart #1)"]);
    expect(sup.restarts("svc")).toBe(1);
    expect(events.map((e) => e.kind)).toEqual(["exit", "restart"]);
    const second = sup.get("svc");
    await second?.waitForLine(/^up$/);
    second?.kill("SIGKILL");
    await waitFor(() => sup.restarts("svc") === 2 && sup.get("svc")?.exitCode() === null);
    expect(notices[1]).toBe("svc exited (signal SIGKILL); restarting in 200ms (restart #2)");
    expect(sup.alive("svc")).toBe(true);
  });

  test("supervisor - a crash loop backs off and a configuration error is not restarted", async () => {
    const notices: string[] = [];
    const sup = make({ sink: () => {}, notice: (l) => notices.push(l) });
    sup.start("crasher", ["sh", "-c", "exit 1"], { restart: { initialMs: 20, factor: 2 } });
    await waitFor(() => sup.restarts("crasher") >= 3, { timeoutMs: 5000 });
    expect(notices.slice(0, 3)).toEqual([
      "crasher exited with code 1; restarting in 20ms (restart #1)",
      "crasher exited with code 1; restarting in 40ms (restart #2)",
      "crasher exited with code 1; restarting in 80ms (restart #3)",
    ]);
    const bad = sup.start("badconf", ["sh", "-c", "exit 2"], { restart: { initialMs: 20 } });
    await bad.exited;
    await waitFor(() => !sup.alive("badconf"));
    expect(sup.restarts("badconf")).toBe(0);
    expect(notices).toContain(
      "badconf exited with code 2; not restarting (that exit code means restarting cannot help)",
    );
  });

  test("supervisor - stop cancels a pending restart", async () => {
    const sup = make({ sink: () => {}, notice: () => {} });
    const p = sup.start("once", ["sh", "-c", "exit 1"], { restart: { initialMs: 300 } });
    await p.exited;
    await waitFor(() => sup.restarts("once") === 1);
    await sup.stop();
    await Bun.sleep(400); // past the restart delay: nothing may have been started
    expect(sup.get("once")?.pid).toBe(p.pid);
    expect(sup.alive("once")).toBe(false);
  });

  test("supervisor - after releaseAll an exit is neither restarted nor announced", async () => {
    const notices: string[] = [];
    const sup = make({ sink: () => {}, notice: (l) => notices.push(l) });
    const p = sup.start("svc", ["sh", "-c", "echo up; exec sleep 30"], {
      restart: { initialMs: 20 },
    });
    await p.waitForLine(/^up$/);
    sup.releaseAll();
    p.kill("SIGINT");
    await p.exited;
    await Bun.sleep(100); // past the restart delay: nothing may have been started
    expect(sup.get("svc")?.pid).toBe(p.pid);
    expect(sup.restarts("svc")).toBe(0);
    expect(notices).toEqual([]);
  });

  test("supervisor - stop after a group signal waits instead of signalling again", async () => {
    const sup = make({ sink: () => {} });
    const p = sup.start("graceful", [
      "sh",
      "-c",
      'trap "echo got-int; sleep 0.3; echo done; exit 0" INT; trap "echo got-term" TERM; echo up; while :; do sleep 0.05; done',
    ]);
    await p.waitForLine(/^up$/);
    p.kill("SIGINT"); // what a terminal's Ctrl-C does to every process of the group
    const codes = await sup.stop(2000, { alreadySignalled: true, settleMs: 3000 });
    expect(codes).toEqual({ graceful: 0 });
    expect(p.lines()).toEqual(["up", "got-int", "done"]);
  });

  test("supervisor - inherit output is not forwarded", async () => {
    const lines: string[] = [];
    const sup = make({ sink: (l) => lines.push(l) });
    const p = sup.start("quiet", ["true"], { output: "inherit" });
    expect(await p.exited).toBe(0);
    expect(lines).toEqual([]);
  });

  test.each([
    ["predicate", () => false],
    ["url", "http://127.0.0.1:9/unreachable"],
  ] as const)("wait - a %s that never holds times out", async (_kind, check) => {
    const started = Date.now();
    await expect(waitFor(check, { timeoutMs: 150, intervalMs: 20 })).rejects.toThrow(
      WaitTimeoutError,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  test("wait - resolves once a URL answers 2xx", async () => {
    let hits = 0;
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => (++hits < 3 ? new Response("later", { status: 503 }) : new Response("ok")),
    });
    try {
      await waitFor(`http://127.0.0.1:${server.port}/`, { timeoutMs: 2000, intervalMs: 10 });
    } finally {
      await server.stop(true);
    }
    expect(hits).toBe(3);
  });
});
