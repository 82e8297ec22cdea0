import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  decodePresenceHeader,
  PRESENCE_HEADER,
  reportExited,
  startHeartbeat,
  subjects,
} from "@periscope/bus";
import { freePort, type LocalNats, startLocalNats, waitFor } from "@periscope/testing";
import { observerClient } from "./client.ts";
import {
  CHILD_PATH,
  LAUNCHER,
  type ObserverProcess,
  podFlowBatch,
  spawnObserver,
  stopObserver,
} from "./testing.ts";

/** Starting the CLI takes seconds on a loaded 2-core machine: tests that spawn it get this long. */
const SPAWN_TIMEOUT_MS = 20_000;

let nats: LocalNats;
let nc: NatsConnection;
let observer: ObserverProcess | undefined;
let server = "";
let opsUrl = "";

function flowBatch(node: string, pods: string[]): Uint8Array {
  return podFlowBatch(
    node,
    pods.map((pod, i) => ({ pod, src: `10.7.0.${i + 1}`, dst: "10.7.0.100" })),
  );
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return Number(m?.[1] ?? Number.NaN);
}

/** Runs the real `periscope` launcher; resolves with its exit code and output. */
async function periscope(...args: string[]) {
  const proc = Bun.spawn([LAUNCHER, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: CHILD_PATH },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr, lines: stdout.split("\n").filter((l) => l !== "") };
}

beforeAll(async () => {
  nats = await startLocalNats({});
  nc = await connect({ servers: nats.url });
  server = `127.0.0.1:${await freePort()}`;
  observer = await spawnObserver({ natsUrl: nats.url, server, nodeName: "cli-test-observer" });
  opsUrl = observer.opsUrl;
  nc.publish(subjects.flows("node-1"), flowBatch("node-1", ["client-a", "client-b", "client-c"]));
  await nc.flush();
  await waitFor(async () => (await metric("periscope_observer_flows_received_total")) === 3, {
    what: "3 flows",
  });
}, 30_000);

afterAll(async () => {
  await stopObserver(observer);
  await nc?.close();
  await nats?.stop();
});

describe("cli process", () => {
  test(
    "cli - observe prints compact lines",
    async () => {
      const r = await periscope("observe", "--server", server, "--last", "2");
      expect(r.code).toBe(0);
      expect(r.lines).toHaveLength(2);
      expect(r.lines[0]).toContain("demo/client-b");
      expect(r.lines[1]).toContain("demo/client-c");
      expect(r.lines[1]).toContain("FORWARDED");
    },
    SPAWN_TIMEOUT_MS,
  );

  test(
    "cli - observe -o json prints one GetFlowsResponse per line",
    async () => {
      const r = await periscope(
        "observe",
        "--server",
        server,
        "-o",
        "json",
        "--from-pod",
        "demo/client-a",
      );
      expect(r.code).toBe(0);
      expect(r.lines).toHaveLength(1);
      const obj = JSON.parse(r.lines[0] ?? "") as {
        flow: { source: { pod_name: string } };
        node_name: string;
      };
      expect(obj.flow.source.pod_name).toBe("client-a");
      expect(obj.node_name).toBe("node-1");
    },
    SPAWN_TIMEOUT_MS,
  );

  test("cli - status prints hubble's status lines and which services are present", async () => {
    const beats = ["collector", "enricher"].map((service) =>
      startHeartbeat(nc, { service, node: "node-1", intervalMs: 200 }),
    );
    try {
      const want = [
        `Healthcheck (via ${server}): Ok`,
        "Current/Max Flows: 3/4,095 (0.07%)",
        expect.stringMatching(/^Flows\/s: \d+\.\d\d$/),
        "Connected Nodes: 1/1",
        "Services: Ok (collector 1, enricher 1, observer 1)",
      ];
      await waitFor(
        async () => {
          let header: string | null = null;
          await observerClient(server).serverStatus(
            {},
            {
              onHeader: (h) => {
                header = h.get(PRESENCE_HEADER);
              },
            },
          );
          return header !== null && decodePresenceHeader(header).services.length === 3;
        },
        { what: "every service present" },
      );
      let r = await periscope("status", "--server", server);
      expect(r.code).toBe(0);
      expect(r.lines).toEqual(want);

      // What a supervisor says when it sees the enricher die: degraded at once.
      reportExited(nc, { service: "enricher", node: "node-1", pid: process.pid });
      await nc.flush();
      r = await periscope("status", "--server", server);
      expect(r.code).toBe(0);
      expect(r.lines[0]).toBe(`Healthcheck (via ${server}): Degraded`);
      expect(r.lines.slice(-2)).toEqual([
        "Services: Degraded",
        expect.stringMatching(
          /^ {2}- enricher: no live instance \(flows are not being decoded\): node-1\/\S+ exited \d+(ms|s) ago$/,
        ),
      ]);
    } finally {
      for (const b of beats) await b.stop();
    }
  }, 30_000);

  test(
    "cli - list nodes shows the publishing node",
    async () => {
      const r = await periscope("list", "nodes", "--server", server);
      expect(r.code).toBe(0);
      expect(r.lines[1]).toMatch(/^node-1\s+Connected\s+/);
    },
    SPAWN_TIMEOUT_MS,
  );

  test.each([
    [["observe", "--no-such-flag"], 2, "unknown flag"],
    [["observe", "--first", "2", "-f"], 2, "--first"],
    [["frobnicate"], 2, "unknown command"],
    [["observe", "--server", "SERVER", "--port", "99999"], 1, "invalid_argument"],
  ])(
    "cli - %p exits %p",
    async (args, code, msg) => {
      const r = await periscope(...args.map((a) => (a === "SERVER" ? server : a)));
      expect(r.code).toBe(code);
      expect(r.stderr).toContain(msg);
    },
    SPAWN_TIMEOUT_MS,
  );

  test(
    "cli - observe against a closed port exits 1",
    async () => {
      const r = await periscope("observe", "--server", `127.0.0.1:${await freePort()}`);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("unavailable");
    },
    SPAWN_TIMEOUT_MS,
  );

  test(
    "cli - observe -f prints new flows and exits 0 on SIGINT",
    async () => {
      const proc = Bun.spawn([LAUNCHER, "observe", "--server", server, "-f"], {
        stdout: "pipe",
        stderr: "pipe",
        env: { PATH: CHILD_PATH },
      });
      let out = "";
      const reading = (async () => {
        const decoder = new TextDecoder();
        for await (const chunk of proc.stdout) out += decoder.decode(chunk);
      })();
      try {
        await waitFor(async () => (await metric("periscope_observer_active_streams")) >= 1, {
          what: "follow stream",
        });
        // The stream is open; publish until the follower (registered right after) prints it.
        await waitFor(
          async () => {
            nc.publish(subjects.flows("node-2"), flowBatch("node-2", ["late-pod"]));
            await nc.flush();
            await Bun.sleep(100);
            return out.includes("demo/late-pod");
          },
          { what: "followed flow to be printed" },
        );
        proc.kill("SIGINT");
        expect(await proc.exited).toBe(0);
        await reading;
        expect(out).not.toContain("client-a");
      } finally {
        proc.kill("SIGKILL");
      }
    },
    SPAWN_TIMEOUT_MS,
  );
});
