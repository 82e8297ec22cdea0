/**
 * What the process sensor (bpf/proc.bpf.c: scheduler tracepoints, sockops and cgroup socket
 * hooks on the cgroup v2 root) costs the host: a fork+exec loop of /bin/true (a shell
 * running it EXECS times) and a TCP connect/close loop over loopback (CONNECTS times), each
 * without the sensor and with it loaded and drained the way the collector drains it (every
 * 50 ms). Rounds alternate off/on; the best round of each mode is compared (the machine is
 * shared). With the sensor on, every exec of the loop is accounted for: exec records of the
 * loop's shell's children delivered, or counted lost by the kernel (ring buffer full).
 */
import { createServer, connect as netConnect, type Server } from "node:net";
import { ProcProgram } from "@periscope/bpf";
import { decodeProcRecord, PROC_EVENT, RECORD_TYPE_PROC } from "@periscope/wire";
import { emit } from "./report.ts";

const BENCH = "process";
const envInt = (name: string, fallback: number): number => {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : fallback;
};
/** fork+exec of /bin/true per round (PERISCOPE_BENCH_EXECS). */
const EXECS = envInt("PERISCOPE_BENCH_EXECS", 20_000);
/** TCP connect/close per round (PERISCOPE_BENCH_CONNECTS). */
const CONNECTS = envInt("PERISCOPE_BENCH_CONNECTS", 5_000);
/** Rounds per mode, alternating off and on (PERISCOPE_BENCH_ROUNDS). */
const ROUNDS = envInt("PERISCOPE_BENCH_ROUNDS", 2);

/** A loaded sensor drained every 50 ms; counts exec records of children of `parent`. */
class Sensor {
  readonly #prog: ProcProgram;
  readonly #timer: ReturnType<typeof setInterval>;
  parent = 0;
  execs = 0;

  constructor() {
    this.#prog = ProcProgram.load();
    this.#timer = setInterval(() => this.drain(), 50);
  }

  drain(): void {
    this.#prog.drainInto({
      addFrom: (ring, offset, length) => {
        if (ring[offset] !== RECORD_TYPE_PROC || ring[offset + 1] !== PROC_EVENT.EXEC) return;
        const rec = decodeProcRecord(ring.subarray(offset, offset + length));
        if (rec.ppid === this.parent && rec.comm === "true") this.execs++;
      },
    });
  }

  lost(): bigint {
    return this.#prog.counters().procLost;
  }

  close(): void {
    clearInterval(this.#timer);
    this.drain();
    this.#prog.close();
  }
}

/** Runs the fork+exec loop in a shell; wall ms and the shell's pid. */
async function execLoop(sensor: Sensor | undefined): Promise<number> {
  const started = performance.now();
  const sh = Bun.spawn(
    ["/bin/sh", "-c", `i=0; while [ $i -lt ${EXECS} ]; do /bin/true; i=$((i+1)); done`],
    { stdout: "ignore", stderr: "inherit" },
  );
  if (sensor) sensor.parent = sh.pid;
  const code = await sh.exited;
  if (code !== 0) throw new Error(`exec loop exited with ${code}`);
  return performance.now() - started;
}

/** CONNECTS sequential connect/close over loopback; wall ms. */
async function connectLoop(port: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < CONNECTS; i++) {
    await new Promise<void>((resolve, reject) => {
      const s = netConnect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve();
      });
      s.once("error", reject);
    });
  }
  return performance.now() - started;
}

/** Runs the part and prints its figures. */
export async function runProcessBench(): Promise<void> {
  const server: Server = createServer((c) => c.destroy());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const best = { execOff: Infinity, execOn: Infinity, connOff: Infinity, connOn: Infinity };
  let delivered = 0;
  let lost = 0n;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      best.execOff = Math.min(best.execOff, await execLoop(undefined));
      best.connOff = Math.min(best.connOff, await connectLoop(port));
      const sensor = new Sensor();
      try {
        const lostBefore = sensor.lost();
        best.execOn = Math.min(best.execOn, await execLoop(sensor));
        best.connOn = Math.min(best.connOn, await connectLoop(port));
        sensor.drain();
        delivered += sensor.execs;
        lost += sensor.lost() - lostBefore;
      } finally {
        sensor.close();
      }
    }
  } finally {
    server.close();
  }
  const pct = (on: number, off: number): number => ((on - off) / off) * 100;
  emit(BENCH, "exec_loop_off_us_per_exec", (best.execOff * 1000) / EXECS, "us");
  emit(BENCH, "exec_loop_on_us_per_exec", (best.execOn * 1000) / EXECS, "us");
  emit(BENCH, "exec_loop_overhead", pct(best.execOn, best.execOff), "%");
  emit(BENCH, "connect_loop_off_us_per_connect", (best.connOff * 1000) / CONNECTS, "us");
  emit(BENCH, "connect_loop_on_us_per_connect", (best.connOn * 1000) / CONNECTS, "us");
  emit(BENCH, "connect_loop_overhead", pct(best.connOn, best.connOff), "%");
  const total = EXECS * ROUNDS;
  emit(BENCH, "exec_events_expected", total, "events");
  emit(BENCH, "exec_events_delivered", delivered, "events");
  emit(BENCH, "exec_events_kernel_lost", Number(lost), "events");
  // Every exec is delivered or counted lost (lost counts records of any process, so >=).
  if (delivered > total || delivered + Number(lost) < total) {
    throw new Error(`exec events: ${delivered} delivered + ${lost} lost != ${total} executed`);
  }
}

if (import.meta.main) await runProcessBench();
