import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DevstackError, Supervisor, WaitAbortedError, WaitTimeoutError, waitFor } from "./index.ts";

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
