/**
 * Worker thread of bench/datapath.ts: runs a loaded trace program with BPF_PROG_TEST_RUN
 * at a paced rate, on its own thread (so on the other core than the collector's), and
 * reports how many records it produced. Each repetition writes one ring buffer record
 * (or counts one kernel loss).
 */

import { ptr } from "bun:ffi";
import { libbpf } from "../packages/bpf/ffi.ts";
import { CStruct, TEST_RUN_OPTS } from "../packages/bpf/structs.ts";

/** What the main thread sends to start a run. */
export interface ProducerRequest {
  progFd: number;
  packet: Uint8Array;
  /** Records per second to aim for. */
  rate: number;
  durationMs: number;
  /** test_run repetitions per call at most. */
  chunk: number;
}

/** What the worker posts back when done. */
export interface ProducerResult {
  produced: number;
  wallMs: number;
  /** Sum of test_run's per-repetition duration times repetitions, ms. */
  kernelMs: number;
  /** CPU time of the producer thread during the run (mostly test_run in the kernel), ms. */
  threadCpuMs: number;
  error?: string;
}

declare const self: Worker;

function run(req: ProducerRequest): ProducerResult {
  const opts = new CStruct(TEST_RUN_OPTS.size);
  const data = req.packet.slice();
  opts.setPtr(TEST_RUN_OPTS.dataIn, ptr(data));
  opts.u32(TEST_RUN_OPTS.dataSizeIn, data.length);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const cpu0 = process.threadCpuUsage();
  const cpuMs = (): number => {
    const u = process.threadCpuUsage(cpu0);
    return (u.user + u.system) / 1000;
  };
  const start = performance.now();
  let produced = 0;
  let kernelNs = 0;
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed >= req.durationMs) break;
    const due = Math.floor((req.rate * elapsed) / 1000) - produced;
    if (due <= 0) {
      Atomics.wait(nap, 0, 0, 0.2);
      continue;
    }
    const n = Math.min(due, req.chunk);
    opts.i32(TEST_RUN_OPTS.repeat, n);
    const rc = libbpf().bpf_prog_test_run_opts(req.progFd, opts.ptr);
    if (rc < 0) {
      return {
        produced,
        wallMs: performance.now() - start,
        kernelMs: kernelNs / 1e6,
        threadCpuMs: cpuMs(),
        error: `bpf_prog_test_run_opts: ${rc}`,
      };
    }
    kernelNs += opts.u32(TEST_RUN_OPTS.duration) * n;
    produced += n;
  }
  return {
    produced,
    wallMs: performance.now() - start,
    kernelMs: kernelNs / 1e6,
    threadCpuMs: cpuMs(),
  };
}

self.onmessage = (event: MessageEvent<ProducerRequest>) => {
  postMessage(run(event.data));
};
