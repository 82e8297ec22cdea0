/**
 * The run command (scripts/up.ts) as a child in a process group of its own, on
 * ports, a netns prefix and a state dir of its own, so tests can signal it like a
 * terminal does (the whole group) and kill its services.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  decodePresenceHeader,
  PRESENCE_HEADER,
  type PresenceReport,
  parseBeat,
  presenceSubjects,
} from "@periscope/bus";
import { cleanupStale, freePort, runOk, waitFor } from "@periscope/devstack";
import { Observer } from "@periscope/proto";

const ROOT = resolve(import.meta.dir, "..");

/** A running scripts/up.ts. */
export interface UpProcess {
  readonly pid: number;
  readonly natsUrl: string;
  readonly observerAddr: string;
  /** Everything it printed so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once stderr matches `re`. */
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<void>;
  /** The live pid of each service, from their presence heartbeats. */
  servicePids(): Readonly<Record<string, number>>;
  /** ServerStatus with the presence report from its header. */
  status(): Promise<{ connectedNodes: number; presence: PresenceReport | undefined }>;
  /** Sends `signal` to the whole process group (what a terminal's Ctrl-C does). */
  signalGroup(signal: NodeJS.Signals): void;
  /** Resolves with the exit code. */
  readonly exited: Promise<number>;
  /** SIGINT to the group, waits, SIGKILL to the group if still there; removes its state. */
  stop(): Promise<void>;
}

/** Four consecutive free ports starting at the returned one. */
async function freePortRun(): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    const listeners: { stop(closeActive?: boolean): void }[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        listeners.push(
          Bun.listen({ hostname: "127.0.0.1", port: base + i, socket: { data() {} } }),
        );
      }
      return base;
    } catch {
      // One of them is taken: try another base.
    } finally {
      for (const l of listeners) l.stop(true);
    }
  }
}

/** Kills the process listening on 127.0.0.1:`port` (found with ss), if any. */
async function killListener(port: number): Promise<void> {
  const out = await runOk(["ss", "-Hltnp", `sport = :${port}`]).catch(() => "");
  for (const m of out.matchAll(/pid=(\d+)/g)) {
    try {
      process.kill(Number(m[1]), "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
}

/** Starts scripts/up.ts with `args` (plus private ports, prefix and state dir). */
export async function startUp(prefix: string, args: string[] = []): Promise<UpProcess> {
  const natsPort = await freePort();
  const observerAddr = `127.0.0.1:${await freePort()}`;
  const stateDir = mkdtempSync(join(tmpdir(), "psct-up-"));
  const argv = [
    "setsid", // a process group of its own, led by bun (setsid execs: same pid)
    "bun",
    "run",
    resolve(ROOT, "scripts/up.ts"),
    "--nats-port",
    String(natsPort),
    "--listen-address",
    observerAddr,
    "--ops-port-base",
    String(await freePortRun()),
    "--demo-prefix",
    prefix,
    "--state-dir",
    stateDir,
    ...args,
  ];
  const proc = Bun.spawn(argv, { cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let out = "";
  let err = "";
  const pump = async (s: ReadableStream<Uint8Array>, add: (t: string) => void): Promise<void> => {
    const d = new TextDecoder();
    for await (const chunk of s) add(d.decode(chunk, { stream: true }));
  };
  const pumps = Promise.all([
    pump(proc.stdout, (t) => {
      out += t;
    }),
    pump(proc.stderr, (t) => {
      err += t;
    }),
  ]);
  const exited = proc.exited.then(async (code) => {
    await pumps;
    return code;
  });
  const natsUrl = `nats://127.0.0.1:${natsPort}`;
  const pids: Record<string, number> = {};
  let nc: NatsConnection | undefined;
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-proc.pid, signal);
    } catch {
      // The group is gone already.
    }
  };
  const stop = async (): Promise<void> => {
    await nc?.close().catch(() => undefined);
    if (proc.exitCode === null) {
      signalGroup("SIGINT");
      const done = await Promise.race([
        exited.then(() => true),
        Bun.sleep(30_000).then(() => false),
      ]);
      if (!done) signalGroup("SIGKILL");
      await exited;
    }
    signalGroup("SIGKILL"); // stragglers of the group, if any
    await killListener(natsPort); // its nats-server runs in a session of its own
    await cleanupStale(prefix);
    rmSync(stateDir, { recursive: true, force: true });
  };
  const up: UpProcess = {
    pid: proc.pid,
    natsUrl,
    observerAddr,
    stdout: () => out,
    stderr: () => err,
    async waitForStderr(re, timeoutMs = 45_000) {
      await waitFor(
        () => {
          if (re.test(err)) return true;
          if (proc.exitCode !== null) throw new Error(`up exited (${proc.exitCode}):\n${err}`);
          return false;
        },
        { timeoutMs, what: `up stderr matching ${re}` },
      );
    },
    servicePids: () => ({ ...pids }),
    async status() {
      const client = createClient(
        Observer,
        createGrpcTransport({ baseUrl: `http://${observerAddr}` }),
      );
      let header: string | null = null;
      const s = await client.serverStatus(
        {},
        {
          timeoutMs: 2000,
          onHeader: (h) => {
            header = h.get(PRESENCE_HEADER);
          },
        },
      );
      return {
        connectedNodes: s.numConnectedNodes ?? 0,
        presence: header === null ? undefined : decodePresenceHeader(header),
      };
    },
    signalGroup,
    exited,
    stop,
  };
  try {
    await up.waitForStderr(/watching .*; observer on/);
    nc = await connect({ servers: natsUrl });
    nc.subscribe(presenceSubjects.all, {
      callback: (e, msg) => {
        if (e) return;
        const beat = parseBeat(msg.data);
        if (beat.state === "up") pids[beat.service] = beat.pid;
      },
    });
    await waitFor(() => Object.keys(pids).length === 4, { what: "all four services beating" });
    return up;
  } catch (e) {
    await stop();
    throw e;
  }
}
