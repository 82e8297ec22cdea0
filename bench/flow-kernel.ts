/**
 * What flow accounting (bpf/include/flows.h) adds to the trace program per packet, in
 * the kernel (BPF_PROG_TEST_RUN, the datapath-kernel bench's method): the same
 * established TCP packet with the flow table off and on, at aggregation medium (the
 * packet is suppressed: the common case) and none (every packet is a record), and with
 * a full table (every packet goes through the spill ring). Medians of RUNS runs, ns/packet.
 */
import {
  type AggregationLevel,
  DEFAULT_FLOW_ENTRIES,
  DEFAULT_RING_BUFFER_BYTES,
  TraceProgram,
} from "@periscope/bpf";
import { frame, type PacketSpec, TCP } from "../packages/bpf/test-packets.ts";
import { emit, quantile } from "./report.ts";

const RUNS = 15;
const REPEAT = 20_000;

const client = (flags: number, payload = 0, sport = 40000): PacketSpec => ({
  src: "10.77.0.1",
  dst: "10.77.0.2",
  proto: 6,
  sport,
  dport: 80,
  flags,
  payload,
});

type FlowMode = "off" | "on" | "full";

function measure(level: AggregationLevel, mode: FlowMode): number {
  const prog = TraceProgram.load({
    ringBufferBytes: DEFAULT_RING_BUFFER_BYTES,
    flowEntries: mode === "full" ? 1 : DEFAULT_FLOW_ENTRIES,
    flowSpillBytes: 1 << 22,
  });
  try {
    const table = prog.flowTable();
    if (mode !== "off") table.enable();
    prog.setSettings({ aggregation: level, reportIntervalMs: 60_000 });
    // an unrelated flow takes the one entry of the full table
    if (mode === "full") prog.testRun(frame(client(TCP.ACK, 0, 1)), 1, "egress");
    const packet = frame(client(TCP.PSH | TCP.ACK, 200));
    prog.testRun(frame(client(TCP.SYN)), 1, "egress");
    prog.testRun(packet, 1, "egress");
    const repeat = level === "none" ? 5000 : REPEAT;
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      runs.push(prog.testRun(packet, repeat, "egress").durationNs);
      prog.drain(() => {});
      table.drainSpill(() => {});
    }
    runs.sort((a, b) => a - b);
    return quantile(runs, 0.5);
  } finally {
    prog.close();
  }
}

/** Runs the flow accounting kernel bench and prints its figures. */
export async function runFlowKernelBench(): Promise<void> {
  for (const level of ["medium", "none"] as const) {
    const off = measure(level, "off");
    const on = measure(level, "on");
    const full = measure(level, "full");
    emit("flow-kernel", `${level}-flows-off`, off, "ns/packet");
    emit("flow-kernel", `${level}-flows-on`, on, "ns/packet");
    emit("flow-kernel", `${level}-flows-added`, on - off, "ns/packet");
    emit("flow-kernel", `${level}-flows-table-full`, full, "ns/packet");
  }
}

if (import.meta.main) await runFlowKernelBench();
