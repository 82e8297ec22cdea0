import { describe, expect, test } from "bun:test";
import type { FlowDelta } from "./flow-table.ts";
import { TraceProgram } from "./index.ts";
import { isRoot } from "./test-helpers.ts";
import { frame, TCP } from "./test-packets.ts";

const udp = (sport: number, payload = 100) =>
  frame({ src: "10.9.0.1", dst: "10.9.0.2", proto: 17, sport, dport: 53, payload });

function evictAll(prog: TraceProgram): FlowDelta[] {
  const out: FlowDelta[] = [];
  prog.flowTable().evict((f) => out.push(f));
  return out;
}

/** Runs `packet` through the ingress program `rounds` x `repeat` times on a worker thread. */
function runOnWorker(
  prog: TraceProgram,
  packet: Uint8Array,
  repeat: number,
  rounds: number,
  stop?: Int32Array,
) {
  const worker = new Worker(new URL("./test-run-worker.ts", import.meta.url).href);
  return new Promise<number>((resolve, reject) => {
    worker.onmessage = (ev: MessageEvent<{ runs?: number; error?: string }>) => {
      worker.terminate();
      if (ev.data.error) reject(new Error(ev.data.error));
      else resolve(ev.data.runs ?? 0);
    };
    worker.postMessage({ fd: prog.programFd("ingress"), packet, repeat, rounds, stop });
  });
}

describe.skipIf(!isRoot)("bpf flow table", () => {
  test("flow table - off until enabled; then one flow per direction, hook and tuple", () => {
    const prog = TraceProgram.load({ ringBufferBytes: 1 << 16, flowEntries: 1024 });
    try {
      const table = prog.flowTable();
      prog.testRun(udp(1000), 3, "ingress");
      expect(evictAll(prog)).toEqual([]);
      table.enable();
      const pkt = udp(1000);
      prog.testRun(pkt, 10, "ingress");
      prog.testRun(pkt, 4, "egress");
      prog.testRun(udp(1001), 2, "ingress");
      const flows = evictAll(prog).sort((a, b) => Number(b.counters.packets - a.counters.packets));
      expect(flows.map((f) => [f.key.srcPort, f.key.direction, f.counters.packets])).toEqual([
        [1000, 0, 10n],
        [1000, 1, 4n],
        [1001, 0, 2n],
      ]);
      const first = flows[0] as FlowDelta;
      expect(first.counters.bytes).toBe(10n * BigInt(pkt.length - 14));
      expect(first.key.srcAddr).toEqual(new Uint8Array([10, 9, 0, 1]));
      expect(first.key.dstPort).toBe(53);
      expect(first.counters.srcMac).toEqual(new Uint8Array([2, 0, 0, 0, 0, 1]));
      expect(first.counters.dstMac).toEqual(new Uint8Array([2, 0, 0, 0, 0, 2]));
      // the evicted generation is empty, the other one counts from zero
      prog.testRun(pkt, 1, "ingress");
      expect(evictAll(prog).map((f) => f.counters.packets)).toEqual([1n]);
      expect(evictAll(prog)).toEqual([]);
    } finally {
      prog.close();
    }
  });

  test("flow table - ICMP keyed by type and code, TCP flags unioned, handshake RTT measured", () => {
    const prog = TraceProgram.load({ ringBufferBytes: 1 << 16, flowEntries: 1024 });
    try {
      prog.flowTable().enable();
      const a = "fd00::1";
      const b = "fd00::2";
      prog.testRun(frame({ src: a, dst: b, proto: 58, icmpType: 128, icmpId: 7 }), 3, "egress");
      prog.testRun(frame({ src: b, dst: a, proto: 58, icmpType: 129, icmpId: 7 }), 3, "ingress");
      const tcp = (src: string, dst: string, sport: number, dport: number, flags: number) =>
        frame({ src, dst, proto: 6, sport, dport, flags });
      prog.testRun(tcp(a, b, 40000, 80, TCP.SYN), 1, "egress");
      prog.testRun(tcp(b, a, 80, 40000, TCP.SYN | TCP.ACK), 1, "ingress");
      prog.testRun(tcp(a, b, 40000, 80, TCP.ACK | TCP.PSH), 1, "egress");
      const flows = evictAll(prog);
      const icmp = flows
        .filter((f) => f.key.proto === 58)
        .map((f) => [f.key.icmpType, f.key.srcPort]);
      expect(icmp.sort()).toEqual([
        [128, 0],
        [129, 0],
      ]);
      const out = flows.find((f) => f.key.proto === 6 && f.key.srcPort === 40000);
      const back = flows.find((f) => f.key.proto === 6 && f.key.srcPort === 80);
      expect(out?.counters.tcpFlags).toBe(TCP.SYN | TCP.ACK | TCP.PSH);
      expect(out?.counters.packets).toBe(2n);
      expect(back?.counters.rttNs).toBeGreaterThan(0n);
      expect(out?.counters.rttNs).toBe(0n);
    } finally {
      prog.close();
    }
  });

  test("flow table - a full table spills packets to the ring; totals stay exact", () => {
    const prog = TraceProgram.load({ ringBufferBytes: 1 << 16, flowEntries: 2 });
    try {
      const table = prog.flowTable();
      table.enable();
      for (const port of [1, 2, 3, 4]) prog.testRun(udp(port), 5, "ingress");
      const inTable = evictAll(prog);
      const spilled: FlowDelta[] = [];
      table.drainSpill((f) => spilled.push(f));
      expect(inTable.length).toBe(2);
      expect(spilled.length).toBe(10);
      const total = [...inTable, ...spilled].reduce((n, f) => n + f.counters.packets, 0n);
      expect(total).toBe(20n);
      expect(table.readSpillLost()).toBe(0n);
    } finally {
      prog.close();
    }
  });

  test("flow table - a full spill ring counts what it could not take", () => {
    const prog = TraceProgram.load({
      ringBufferBytes: 1 << 16,
      flowEntries: 1,
      flowSpillBytes: 4096,
    });
    try {
      const table = prog.flowTable();
      table.enable();
      prog.testRun(udp(1), 1, "ingress");
      prog.testRun(udp(2), 200, "ingress");
      let spilled = 0n;
      table.drainSpill((f) => {
        spilled += f.counters.packets;
      });
      const lost = table.readSpillLost();
      expect(lost).toBeGreaterThan(0n);
      expect(spilled + lost).toBe(200n);
    } finally {
      prog.close();
    }
  });

  test("flow table - evictions while another thread runs the program lose no packet", async () => {
    const prog = TraceProgram.load({ ringBufferBytes: 1 << 12, flowEntries: 1024 });
    try {
      const table = prog.flowTable();
      table.enable();
      let counted = 0n;
      // The worker runs the program until told to stop: 20 evictions that took packets
      // happen while it runs, however the threads are scheduled.
      const stop = new Int32Array(new SharedArrayBuffer(4));
      const running = runOnWorker(prog, udp(7), 1000, 1_000_000, stop);
      let done = false;
      running.then(
        () => {
          done = true;
        },
        () => {
          done = true;
        },
      );
      let evictionsWithPackets = 0;
      while (!done && evictionsWithPackets < 20) {
        const before = counted;
        table.evict((f) => {
          counted += f.counters.packets;
        });
        if (counted > before) evictionsWithPackets++;
        await Bun.sleep(1);
      }
      Atomics.store(stop, 0, 1);
      const runs = await running;
      table.disable((f) => {
        counted += f.counters.packets;
      });
      expect(evictionsWithPackets).toBe(20);
      expect(runs).toBeGreaterThan(0);
      expect(runs).toBeLessThan(1_000_000_000); // stopped by the flag, not by the cap
      expect(counted).toBe(BigInt(runs));
    } finally {
      prog.close();
    }
  });
});
