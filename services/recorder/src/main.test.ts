import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type LocalNats, startLocalNats, waitFor } from "@periscope/testing";

const MAIN = `${import.meta.dir}/main.ts`;
const storageDir = mkdtempSync(join(tmpdir(), "periscope-rec-"));

const status = async (url: string): Promise<number> => (await fetch(url)).status;

function startRecorder(env: Record<string, string>) {
  return Bun.spawn([process.execPath, "run", MAIN], {
    env: {
      PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
      PERISCOPE_RECORDER_LISTEN_ADDR: "127.0.0.1:0",
      PERISCOPE_RECORDER_STORAGE_DIR: storageDir,
      ...env,
    },
    stdout: "pipe",
    stderr: "pipe",
  });
}

describe("recorder process", () => {
  let nats: LocalNats;
  const children: ReturnType<typeof startRecorder>[] = [];
  beforeAll(async () => {
    nats = await startLocalNats({ port: 0 });
  });
  afterAll(async () => {
    for (const c of children) {
      c.kill("SIGKILL");
      await c.exited;
    }
    await nats?.stop();
    rmSync(storageDir, { recursive: true, force: true });
  });

  test("recorder - serves health, readiness and metrics, exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const proc = startRecorder({
      PERISCOPE_NATS_URL: nats.url,
      PERISCOPE_OPS_ADDR: `127.0.0.1:${port}`,
      PERISCOPE_NODE_NAME: "test-node",
    });
    children.push(proc);
    await waitFor(async () => (await status(`${base}/readyz`)) === 200, {
      what: "recorder /readyz",
    });
    expect(await status(`${base}/healthz`)).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain("periscope_recorder_nats_connected");
    expect(metrics).toContain("process_resident_memory_bytes");

    proc.kill("SIGTERM");
    const code = await Promise.race([proc.exited, Bun.sleep(10_000).then(() => "timeout")]);
    expect(code).toBe(0);
    const logs = (await new Response(proc.stdout).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { service: string; msg: string });
    expect(logs.every((l) => l.service === "recorder")).toBe(true);
    expect(logs.map((l) => l.msg)).toContain("stopped");
  });

  test("recorder - stays alive but not ready without NATS, still exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const proc = startRecorder({
      PERISCOPE_NATS_URL: `nats://127.0.0.1:${await freePort()}`,
      PERISCOPE_OPS_ADDR: `127.0.0.1:${port}`,
    });
    children.push(proc);
    await waitFor(async () => (await status(`${base}/healthz`)) === 200, {
      what: "recorder /healthz",
    });
    expect(await status(`${base}/readyz`)).toBe(503);
    await waitFor(
      async () => (await (await fetch(`${base}/metrics`)).text()).includes('kind="nats_connect"'),
      { what: "a counted connect error" },
    );
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  });

  test("recorder - bad configuration exits 2 naming the field", async () => {
    const proc = startRecorder({ PERISCOPE_OPS_ADDR: "nope" });
    children.push(proc);
    expect(await proc.exited).toBe(2);
    expect(await new Response(proc.stderr).text()).toContain("PERISCOPE_OPS_ADDR: ");
  });
});
