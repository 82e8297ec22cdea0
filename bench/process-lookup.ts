/**
 * Bench part `process-lookup`: what the enricher pays per flow for the process.
 *
 * - Lookup by (tgid, start time) in a process cache holding 65,536 processes (exec records).
 * - The flow join: `FlowProcesses.anyBytes` for the first flow of each socket (it builds the
 *   socket's Process message), then for a flow whose socket owner is known (found by
 *   the sender's tuple, by the receiver's tuple), and for a flow without an owner; 65,536
 *   sockets held, their processes in the cache.
 *
 * Timed in batches of BATCH operations (a single lookup is below the clock's resolution);
 * p50 and p99 are over the batches' per-operation times. The machine is shared: the
 * figures include whatever else runs.
 */
import { formatIPv4 } from "@periscope/model";
import {
  decodeProcRecord,
  encodeProcRecord,
  encodeSockOwnerRecord,
  PROC_EVENT,
  SOCK_SOURCE,
} from "@periscope/wire";
import { FlowProcesses } from "../services/enricher/src/process/flow-join.ts";
import { ProcessCache } from "../services/enricher/src/process/process-cache.ts";
import { emit, quantile } from "./report.ts";

const BENCH = "process-lookup";
const ENTRIES = 65_536;
const BATCH = 256;
const BATCHES = 2000;
const NETNS = 4026531840n;

/** Per-operation ns of each batch, ascending (after `warm` operations not timed). */
function timeBatches(
  op: (i: number) => unknown,
  warm = BATCH * 20,
  batches = BATCHES,
): Float64Array {
  const out = new Float64Array(batches);
  let sink = 0;
  for (let w = 0; w < warm; w++) if (op(w) !== undefined) sink++;
  for (let b = 0; b < batches; b++) {
    const base = b * BATCH;
    const t0 = Bun.nanoseconds();
    for (let i = 0; i < BATCH; i++) if (op(base + i) !== undefined) sink++;
    out[b] = (Bun.nanoseconds() - t0) / BATCH;
  }
  if (sink < 0) throw new Error("unreachable");
  return out.sort();
}

function report(name: string, sorted: Float64Array): { p50: number; p99: number } {
  const p50 = quantile(sorted, 0.5);
  const p99 = quantile(sorted, 0.99);
  emit(BENCH, `${name}_p50_ns`, p50, "ns");
  emit(BENCH, `${name}_p99_ns`, p99, "ns");
  return { p50, p99 };
}

/** Address of host `i` in 10.0.0.0/8. */
const addr = (i: number): Uint8Array =>
  Uint8Array.of(10, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);

/** Runs the part and prints its figures. */
export function runProcessLookupBench(): void {
  const cache = new ProcessCache({ readOnMiss: false });
  const startOf = (i: number): bigint => BigInt(1e9 + i * 1e7);
  for (let i = 0; i < ENTRIES; i++) {
    cache.apply(
      decodeProcRecord(
        encodeProcRecord({
          event: PROC_EVENT.EXEC,
          cpu: 0,
          tsBootNs: startOf(i),
          pid: 100 + i,
          tgid: 100 + i,
          ppid: 1,
          uid: 1000,
          gid: 1000,
          euid: 1000,
          egid: 1000,
          exitStatus: 0,
          cgroupId: 1n,
          parentStartNs: 0n,
          startNs: startOf(i),
          comm: "curl",
          binary: "/usr/bin/curl",
          args: ["curl", "-s", `http://10.0.0.1/${i}`],
        }),
      ),
    );
  }
  if (cache.size !== ENTRIES) throw new Error(`cache holds ${cache.size}, want ${ENTRIES}`);
  // Keys visited in a scattered order.
  const key = (i: number): number => (i * 7919) % ENTRIES;
  const lookup = report(
    "lookup",
    timeBatches((i) => {
      const k = key(i);
      return cache.lookup(100 + k, startOf(k));
    }),
  );

  const join = new FlowProcesses(cache, undefined, { maxSockets: ENTRIES });
  const server = Uint8Array.of(10, 255, 0, 1);
  for (let i = 0; i < ENTRIES; i++) {
    join.noteOwner(
      encodeSockOwnerRecord({
        source: SOCK_SOURCE.TCP_CONNECT,
        cpu: 0,
        tsBootNs: 1n,
        pid: 100 + i,
        tgid: 100 + i,
        flowHash: 0,
        family: 4,
        proto: 6,
        netnsCookie: NETNS,
        saddr: addr(i),
        daddr: server,
        sport: 30_000 + (i & 0x3fff),
        dport: 443,
        uid: 1000,
        sockCookie: BigInt(i + 1),
        cgroupId: 1n,
        startNs: startOf(i),
        comm: "curl",
      }),
    );
  }
  if (join.size !== ENTRIES) throw new Error(`join holds ${join.size}, want ${ENTRIES}`);
  const srcs = Array.from({ length: ENTRIES }, (_, i) => formatIPv4(addr(i), 0));
  const dst = formatIPv4(server, 0);
  const sport = (k: number): number => 30_000 + (k & 0x3fff);
  const senderOp = (i: number) => {
    const k = key(i);
    return join.anyBytes(NETNS, 6, srcs[k] as string, sport(k), dst, 443);
  };
  // A socket's first flow builds its Process message (once per socket); later flows
  // reuse it. The first visit of each of the sockets is timed apart.
  const first = report("join_first_flow", timeBatches(senderOp, 0, ENTRIES / BATCH));
  const sender = report("join_sender_owner", timeBatches(senderOp, 0));
  const receiver = report(
    "join_receiver_owner",
    timeBatches((i) => {
      const k = key(i);
      return join.anyBytes(NETNS, 6, dst, 443, srcs[k] as string, sport(k));
    }),
  );
  const none = report(
    "join_no_owner",
    timeBatches((i) => {
      const k = key(i);
      return join.anyBytes(NETNS, 17, srcs[k] as string, sport(k), dst, 53);
    }),
  );
  const s = join.stats;
  emit(BENCH, "entries", ENTRIES, "processes");
  emit(BENCH, "batch", BATCH, "ops");
  if (s.noOwner === 0 || s.flowsWithProcess === 0 || s.processUnknown !== 0) {
    throw new Error(`join counted ${JSON.stringify(s)}`);
  }
  process.stderr.write(
    `process-lookup: lookup p50 ${lookup.p50.toFixed(0)} / p99 ${lookup.p99.toFixed(0)} ns; ` +
      `join (first flow of a socket) ${first.p50.toFixed(0)} / ${first.p99.toFixed(0)} ns, ` +
      `(sender) ${sender.p50.toFixed(0)} / ${sender.p99.toFixed(0)} ns, ` +
      `(receiver) ${receiver.p50.toFixed(0)} / ${receiver.p99.toFixed(0)} ns, ` +
      `(no owner) ${none.p50.toFixed(0)} / ${none.p99.toFixed(0)} ns\n`,
  );
}

if (import.meta.main) runProcessLookupBench();
