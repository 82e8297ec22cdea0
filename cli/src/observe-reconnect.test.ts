import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { subjects } from "@periscope/bus";
import { freePort, type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { CHILD_PATH, LAUNCHER, podFlowBatch, spawnObserver } from "./testing.ts";

let nats: LocalNats;
let nc: NatsConnection;
let server = "";

async function startObserver(): Promise<{ proc: ReturnType<typeof Bun.spawn>; readyMs: number }> {
  const { proc } = await spawnObserver({
    natsUrl: nats.url,
    server,
    nodeName: "reconnect-test-observer",
    stdout: "ignore",
    readyTimeoutMs: 20_000,
  });
  return { proc, readyMs: Date.now() };
}

/** Publishes a flow of `pod` until the follower has printed it. */
async function publishUntilPrinted(pod: string, out: () => string): Promise<void> {
  await waitFor(
    async () => {
      nc.publish(
        subjects.flows("node-r"),
        podFlowBatch("node-r", [{ pod, src: "10.7.1.1", dst: "10.7.1.2" }]),
      );
      await nc.flush();
      await Bun.sleep(100); // one publish per 100 ms while waiting for the print
      return out().includes(`demo/${pod}`);
    },
    { timeoutMs: 20_000, what: `flow of ${pod} printed` },
  );
}

beforeAll(async () => {
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  server = `127.0.0.1:${await freePort()}`;
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

describe("observe -f reconnects", () => {
  test("observe - a follow stream resumes on the same stdout after the observer is killed and back", async () => {
    let observer = await startObserver();
    const cli = Bun.spawn([LAUNCHER, "observe", "--server", server, "-f"], {
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: CHILD_PATH },
    });
    let out = "";
    let errText = "";
    const pump = async (s: ReadableStream<Uint8Array>, add: (t: string) => void) => {
      const d = new TextDecoder();
      for await (const chunk of s) add(d.decode(chunk));
    };
    const reading = Promise.all([
      pump(cli.stdout, (t) => {
        out += t;
      }),
      pump(cli.stderr, (t) => {
        errText += t;
      }),
    ]);
    try {
      await publishUntilPrinted("before-kill", () => out);
      observer.proc.kill("SIGKILL");
      await observer.proc.exited;
      await waitFor(() => errText.includes("connection lost"), { what: "connection lost notice" });
      expect(cli.exitCode).toBeNull();

      observer = await startObserver();
      await publishUntilPrinted("after-restart", () => out);
      const resumedMs = Date.now() - observer.readyMs;
      expect(errText).toMatch(/reconnecting in \d+(ms|s)/);
      expect(errText).toContain("reconnected");
      expect(out.split("demo/before-kill").length - 1).toBeGreaterThanOrEqual(1);
      // Resumed after the last printed flow: nothing printed before the kill comes again.
      const beforeLines = out.split("\n").filter((l) => l.includes("demo/before-kill"));
      expect(new Set(beforeLines).size).toBe(beforeLines.length);
      console.error(`observe -f resumed ${resumedMs} ms after the new observer was ready`);

      cli.kill("SIGINT");
      expect(await cli.exited).toBe(0);
      await reading;
    } catch (e) {
      console.error(`observe stderr:\n${errText}\nstdout:\n${out}`);
      throw e;
    } finally {
      cli.kill("SIGKILL");
      observer.proc.kill("SIGTERM");
      await observer.proc.exited;
    }
  }, 60_000);
});
