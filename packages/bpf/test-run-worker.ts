/**
 * Test-only worker: runs a program `rounds` times on a packet with
 * BPF_PROG_TEST_RUN (repeat `repeat` each), on its own thread, so a test can
 * read maps while the program runs. Message in: {fd, packet, repeat, rounds, stop?};
 * with `stop` (an Int32Array on shared memory) it runs rounds until stop[0] is set
 * instead, `rounds` at most. Message out: {runs} (program runs done) or {error}.
 */
import { ptr } from "bun:ffi";
import { libbpf } from "./ffi.ts";
import { CStruct, TEST_RUN_OPTS } from "./structs.ts";

declare const self: Worker;

interface RunRequest {
  fd: number;
  packet: Uint8Array;
  repeat: number;
  rounds: number;
  stop?: Int32Array;
}

self.onmessage = (ev: MessageEvent<RunRequest>) => {
  const { fd, packet, repeat, rounds, stop } = ev.data;
  const data = packet.slice();
  let runs = 0;
  for (let i = 0; i < rounds; i++) {
    if (stop !== undefined && Atomics.load(stop, 0) !== 0) break;
    const opts = new CStruct(TEST_RUN_OPTS.size);
    opts.setPtr(TEST_RUN_OPTS.dataIn, ptr(data));
    opts.u32(TEST_RUN_OPTS.dataSizeIn, data.length);
    opts.i32(TEST_RUN_OPTS.repeat, repeat);
    const rc = libbpf().bpf_prog_test_run_opts(fd, opts.ptr);
    if (rc < 0) {
      self.postMessage({ error: `bpf_prog_test_run_opts: ${rc}` });
      return;
    }
    runs += repeat;
  }
  self.postMessage({ runs });
};
