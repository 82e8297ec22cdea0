import { DevstackError, WaitAbortedError } from "./errors.ts";
import type { Pod, PodProcess, Topology } from "./topology.ts";
import { waitFor } from "./wait.ts";

/** Options for {@link demoTraffic}. */
export interface DemoTrafficOptions {
  /** Pause between rounds, ms (default 500). */
  intervalMs?: number;
  /** TCP port of the HTTP server in the server pod (default 8080). */
  httpPort?: number;
  /** UDP echo port in the server pod (default 9000). */
  udpPort?: number;
}

/** Counts of what the generator did. */
export interface TrafficStats {
  rounds: number;
  ok: number;
  failed: number;
}

/** A running traffic generator. */
export interface DemoTraffic {
  /** The client, server and third pod used. */
  readonly client: Pod;
  readonly server: Pod;
  readonly peer: Pod;
  stats(): TrafficStats;
  /** Ends the loop after the current round and stops the servers; safe twice. */
  stop(): Promise<void>;
}

/** HTTP on [::]:<http> (dual stack) and a UDP echo on <udp>, printing "ready" when both listen. */
function serverScript(httpPort: number, udpPort: number): string {
  return `Bun.serve({ hostname: "::", port: ${httpPort}, fetch: () => new Response("periscope demo\\n") });
await Bun.udpSocket({ hostname: "::", port: ${udpPort}, socket: { data(s, buf, port, addr) { s.send(buf, port, addr); } } });
console.log("ready");`;
}

/**
 * Generates a small repeating mix between pods until stopped: HTTP over TCP (curl, IPv4 and
 * IPv6) from the client pod to the server pod, UDP to an echo server (nc -u), and ICMP
 * pings (v4 client → peer, v6 server → peer). Uses pods named frontend/backend/db when
 * present, else the first three (or two) pods.
 */
export async function demoTraffic(
  topology: Topology,
  opts: DemoTrafficOptions = {},
): Promise<DemoTraffic> {
  const pick = (name: string, i: number): Pod | undefined =>
    topology.pods.find((p) => p.name === name) ?? topology.pods[i];
  const client = pick("frontend", 0);
  const server = pick("backend", 1);
  if (!client || !server || client === server) {
    throw new DevstackError("demo traffic needs at least two pods");
  }
  const peer = pick("db", 2) ?? client;
  const httpPort = opts.httpPort ?? 8080;
  const udpPort = opts.udpPort ?? 9000;
  const srv: PodProcess = topology.spawn(server, [
    process.execPath,
    "-e",
    serverScript(httpPort, udpPort),
  ]);
  let srvOut = "";
  void (async () => {
    for await (const chunk of srv.stdout) srvOut += new TextDecoder().decode(chunk);
  })();
  await waitFor(
    () => {
      if (srv.exitCode !== null)
        throw new WaitAbortedError(`demo server exited with ${srv.exitCode}`);
      return srvOut.includes("ready");
    },
    { timeoutMs: 10_000, what: "demo server ready" },
  );

  const stats: TrafficStats = { rounds: 0, ok: 0, failed: 0 };
  const count = (code: number): void => {
    if (code === 0) stats.ok++;
    else stats.failed++;
  };
  const round = async (): Promise<void> => {
    const results = await Promise.all([
      ...[server.ipv4, `[${server.ipv6}]`].map((host) =>
        topology.exec(client, [
          "curl",
          "-s",
          "-o",
          "/dev/null",
          "-m",
          "2",
          `http://${host}:${httpPort}/`,
        ]),
      ),
      topology.exec(client, ["nc", "-u", "-w", "1", server.ipv4, String(udpPort)], {
        stdin: "ping\n",
      }),
      topology.exec(client, ["ping", "-c", "1", "-W", "1", peer.ipv4]),
      topology.exec(server, ["ping", "-6", "-c", "1", "-W", "1", peer.ipv6]),
    ]);
    for (const r of results) count(r.code);
    stats.rounds++;
  };

  let running = true;
  const loop = (async () => {
    while (running) {
      await round();
      if (running) await Bun.sleep(opts.intervalMs ?? 500);
    }
  })();

  let stopping: Promise<void> | undefined;
  return {
    client,
    server,
    peer,
    stats: () => ({ ...stats }),
    stop() {
      stopping ??= (async () => {
        running = false;
        await loop;
        srv.kill("SIGTERM");
        await srv.exited;
      })();
      return stopping;
    },
  };
}
