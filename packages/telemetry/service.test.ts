import { describe, expect, test } from "bun:test";
import { join } from "node:path";

const FIXTURE = join(import.meta.dir, "testdata/slow-stop-service.ts");

/** Runs the fixture service, waits for "started", sends `signals` `gapMs` apart. */
async function signalService(
  signals: NodeJS.Signals[],
  env: Record<string, string> = {},
  gapMs = 5,
): Promise<{ code: number; out: string; ms: number }> {
  const proc = Bun.spawn(["bun", "run", FIXTURE], {
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "ignore",
  });
  try {
    const reader = proc.stdout.getReader();
    let out = "";
    while (!out.includes("started\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`fixture exited before starting: ${out}`);
      out += new TextDecoder().decode(value);
    }
    const started = Date.now();
    for (const [i, sig] of signals.entries()) {
      if (i > 0) await Bun.sleep(gapMs); // the gap between two senders, not a wait for state
      proc.kill(sig);
    }
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    return { code: await proc.exited, out, ms: Date.now() - started };
  } finally {
    proc.kill("SIGKILL");
  }
}

describe("runService", () => {
  test.each([[["SIGINT"]], [["SIGINT", "SIGTERM"]], [["SIGTERM", "SIGINT", "SIGTERM"]]] as const)(
    "service - %p finishes the whole graceful stop and exits 0",
    async (signals) => {
      const r = await signalService([...signals]);
      expect(r.out).toBe("started\ncleanup done\n");
      expect(r.code).toBe(0);
      expect(r.ms).toBeGreaterThanOrEqual(300);
    },
  );

  test("service - a stop that outlives the deadline exits 1", async () => {
    const r = await signalService(["SIGTERM"], { SLOW_STOP_MS: "5000", STOP_DEADLINE_MS: "400" });
    expect(r.code).toBe(1);
    expect(r.out).toBe("started\n");
    expect(r.ms).toBeLessThan(4000);
  });
});
