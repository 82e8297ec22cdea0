import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { forwardLines } from "@periscope/model";
import { LocalNatsError } from "./errors.ts";

/** Where a server's own log lines go (a pino `Logger` fits). */
export interface NatsLogSink {
  debug(obj: object, msg?: string): void;
}

/** Options for {@link startLocalNats}. */
export interface LocalNatsOptions {
  /** TCP port; 0 or absent picks a free one. */
  port?: number;
  /** JetStream store dir; absent → a fresh temp dir that stop() removes. */
  storeDir?: string;
  /** Listen host, default 127.0.0.1. */
  host?: string;
  /** nats-server binary, default `nats-server` on PATH. */
  binary?: string;
  /** How long to wait for the server to accept connections, ms (default 10000). */
  startTimeoutMs?: number;
  /** Receives the server's own log lines at debug level. */
  log?: NatsLogSink;
}

/** A nats-server child process with JetStream enabled. */
export interface LocalNats {
  /** `nats://host:port` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly storeDir: string;
  readonly pid: number;
  /** SIGTERM, wait for exit (SIGKILL after 5 s); safe to call twice. */
  stop(): Promise<void>;
}

/** A TCP port on `host` that was free a moment ago (bound to port 0, then released). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const listener = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** True when something accepts a TCP connection on host:port. */
export async function canConnect(host: string, port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: host, port, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    // Refused or unreachable is the answer "no", not an error.
    return false;
  }
}

/** Servers started by this process and not yet exited. */
const running = new Set<{ kill(signal?: number | NodeJS.Signals): void }>();
// The process that starts a server owns it: one still running when this process exits
// (a caller that failed before stop()) is ended with it rather than left behind.
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
});

/**
 * Spawns `nats-server -js -a <host> -p <port> -sd <storeDir>` and resolves once it
 * accepts TCP connections. Throws {@link LocalNatsError} (with the server's last log
 * lines) if it exits or does not come up in time.
 */
export async function startLocalNats(opts: LocalNatsOptions = {}): Promise<LocalNats> {
  const host = opts.host ?? "127.0.0.1";
  const port = opts.port && opts.port > 0 ? opts.port : await freePort(host);
  const ownsDir = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), "periscope-nats-"));
  try {
    mkdirSync(storeDir, { recursive: true });
  } catch (err) {
    throw new LocalNatsError(`cannot create nats store dir ${storeDir}`, { cause: err });
  }
  // setsid: a session of its own, so a terminal's Ctrl-C (sent to the whole
  // foreground process group) reaches the services, which drain into this
  // server, but not the server itself; stop() ends it after they are gone.
  const argv = [
    "setsid",
    opts.binary ?? "nats-server",
    "-js",
    "-a",
    host,
    "-p",
    String(port),
    "-sd",
    storeDir,
  ];
  let proc: ReturnType<typeof Bun.spawn<"ignore", "ignore", "pipe">>;
  try {
    proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  } catch (err) {
    throw new LocalNatsError(`cannot run ${argv.join(" ")}`, { cause: err });
  }
  const tail: string[] = [];
  void forwardLines(proc.stderr, (line) => {
    tail.push(line);
    if (tail.length > 30) tail.shift();
    opts.log?.debug({ nats: line }, "nats-server");
  });
  let exited = false;
  running.add(proc);
  void proc.exited.then(() => {
    exited = true;
    running.delete(proc);
  });

  const cleanup = async (): Promise<void> => {
    if (!exited) {
      proc.kill("SIGTERM");
      const done = await Promise.race([
        proc.exited.then(() => true),
        Bun.sleep(5000).then(() => false),
      ]);
      if (!done) {
        proc.kill("SIGKILL");
        await proc.exited;
      }
    }
    if (ownsDir) rmSync(storeDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000);
  while (!(await canConnect(host, port))) {
    if (exited || Date.now() > deadline) {
      const why = exited
        ? `exited with code ${proc.exitCode}`
        : "did not accept connections in time";
      await cleanup();
      throw new LocalNatsError(`nats-server on ${host}:${port} ${why}:\n${tail.join("\n")}`);
    }
    await Bun.sleep(25);
  }

  const urlHost = host.includes(":") ? `[${host}]` : host;
  let stopping: Promise<void> | undefined;
  return {
    url: `nats://${urlHost}:${port}`,
    host,
    port,
    storeDir,
    pid: proc.pid,
    stop() {
      stopping ??= cleanup();
      return stopping;
    },
  };
}
