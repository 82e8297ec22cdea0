/**
 * The trace program's cost per packet in the kernel (BPF_PROG_TEST_RUN), at
 * every aggregation level, against an empty TC program; and the two ways of
 * getting a record into the ring buffer: reserve + copy from the skb straight
 * into the sample (dynptr, what trace.bpf.c does) vs build it in a per-CPU
 * scratch buffer and bpf_ringbuf_output it (-DPSCOPE_EMIT_OUTPUT).
 *
 * Figures are medians (and minimums, `-min`) of RUNS runs of up to REPEAT packets
 * each (the ring buffer is drained between runs, as a collector would), ns/packet, on one
 * established TCP connection (PSH|ACK with 200 payload bytes unless named).
 * At none/low every packet becomes a record; at medium/maximum this packet is
 * suppressed, so those figures are the cost of deciding.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type AggregationLevel, DEFAULT_RING_BUFFER_BYTES, TraceProgram } from "@periscope/bpf";
import { runOk } from "@periscope/devstack";
import { frame, type PacketSpec, TCP } from "../packages/bpf/test-packets.ts";
import { emit, quantile } from "./report.ts";

const ROOT = resolve(import.meta.dir, "..");
const RUNS = 9;
const REPEAT = 20_000;
/** The collector's ring buffer size: a larger ring is slower per record (TLB, cache). */
const RING_BYTES = DEFAULT_RING_BUFFER_BYTES;

/** Just enough of the trace object for TraceProgram.load: same maps, programs return at once. */
const EMPTY_PROGRAM = `
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
const volatile struct { __u32 capture_len, pad; } cfg = { 128, 0 };
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 20); } events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } lost_events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } conntrack SEC(".maps");
SEC("tc") int trace_ingress(struct __sk_buff *skb) { return -1; }
SEC("tc") int trace_egress(struct __sk_buff *skb) { return -1; }
char LICENSE[] SEC("license") = "Dual BSD/GPL";
`;

async function compile(
  dir: string,
  src: string,
  out: string,
  defines: string[] = [],
): Promise<string> {
  const path = join(dir, out);
  await runOk([
    "clang",
    "-g",
    "-O2",
    "-target",
    "bpf",
    "-D__TARGET_ARCH_x86",
    ...defines,
    "-I",
    join(ROOT, "bpf/include"),
    "-I",
    join(ROOT, "bpf/build"),
    "-c",
    src,
    "-o",
    path,
  ]);
  return path;
}

const client = (flags: number, payload = 0): PacketSpec => ({
  src: "10.77.0.1",
  dst: "10.77.0.2",
  proto: 6,
  sport: 40000,
  dport: 80,
  flags,
  payload,
});

/** Median ns/packet of `packet` on egress after the handshake, at `level`. */
function measure(
  objectPath: string,
  level: AggregationLevel | undefined,
  packet: Uint8Array,
  captureLen = 128,
): { median: number; min: number } {
  // Room for one run's records: a full ring would make lost records look cheap.
  const repeat = Math.min(REPEAT, Math.floor(RING_BYTES / (48 + packet.length) / 2));
  const prog = TraceProgram.load({ objectPath, captureLen, ringBufferBytes: RING_BYTES });
  try {
    if (level !== undefined) {
      prog.setSettings({ aggregation: level, reportIntervalMs: 60_000 });
      prog.testRun(frame(client(TCP.SYN)), 1, "egress");
      prog.testRun(
        frame({
          ...client(TCP.SYN | TCP.ACK),
          sport: 80,
          dport: 40000,
          src: "10.77.0.2",
          dst: "10.77.0.1",
        }),
        1,
        "egress",
      );
      prog.testRun(frame(client(TCP.ACK)), 1, "egress");
      prog.testRun(packet, 1, "egress"); // its flags are not new any more
    }
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      runs.push(prog.testRun(packet, repeat, "egress").durationNs);
      prog.drain(() => {});
    }
    const lost = prog.readKernelLost();
    if (lost > 0n) process.stderr.write(`datapath-kernel: ${lost} records lost while measuring\n`);
    runs.sort((a, b) => a - b);
    return { median: quantile(runs, 0.5), min: runs[0] ?? Number.NaN };
  } finally {
    prog.close();
  }
}

/** Runs the kernel datapath bench and prints its figures. */
export async function runDatapathKernelBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "periscope-bench-bpf-"));
  try {
    const emptySrc = join(dir, "empty.bpf.c");
    writeFileSync(emptySrc, EMPTY_PROGRAM);
    const empty = await compile(dir, emptySrc, "empty.bpf.o");
    const traceSrc = join(ROOT, "bpf/trace.bpf.c");
    const dynptr = await compile(dir, traceSrc, "trace-dynptr.bpf.o");
    const output = await compile(dir, traceSrc, "trace-output.bpf.o", ["-DPSCOPE_EMIT_OUTPUT"]);
    const data = frame(client(TCP.PSH | TCP.ACK, 200));
    const pureAck = frame(client(TCP.ACK));
    const big = frame(client(TCP.PSH | TCP.ACK, 1400));

    const put = (metric: string, r: { median: number; min: number }): void => {
      emit("datapath-kernel", metric, r.median, "ns/packet");
      emit("datapath-kernel", `${metric}-min`, r.min, "ns/packet");
    };
    put("empty-tc-program", measure(empty, undefined, data));
    for (const level of ["none", "low", "medium", "maximum"] as const) {
      put(`established-${level}`, measure(dynptr, level, data));
    }
    put("pure-ack-low", measure(dynptr, "low", pureAck));
    for (const [name, obj] of [
      ["reserve-dynptr", dynptr],
      ["scratch-output", output],
    ] as const) {
      put(`${name}-none-cap128`, measure(obj, "none", data, 128));
      put(`${name}-none-cap1536`, measure(obj, "none", big, 1536));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await runDatapathKernelBench();
