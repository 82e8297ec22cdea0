import { describe, expect, test } from "bun:test";
import type { FlowDelta } from "@periscope/bpf";
import { FlowCache } from "./netflow-cache.ts";
import type { FlowDedupeMode } from "./netflow-config.ts";
import { implausibleCounters, U64_MAX } from "./netflow-guard.ts";

const S = 1_000_000_000n;

/** A delta of `packets` for the tuple 10.0.0.1:1000 -> 10.0.0.2:80 at ifindex/direction. */
function delta(
  ifindex: number,
  direction: 0 | 1,
  packets: bigint,
  firstNs: bigint,
  lastNs: bigint,
  sport = 1000,
): FlowDelta {
  return {
    id: `${ifindex}/${direction}/${sport}`,
    key: {
      netnsCookie: 1n,
      ifindex,
      family: 4,
      proto: 6,
      direction,
      icmpType: 0,
      icmpCode: 0,
      srcAddr: new Uint8Array([10, 0, 0, 1]),
      dstAddr: new Uint8Array([10, 0, 0, 2]),
      srcPort: sport,
      dstPort: 80,
    },
    counters: {
      firstSeenNs: firstNs,
      lastSeenNs: lastNs,
      packets,
      bytes: packets * 100n,
      rttNs: 0n,
      srcMac: new Uint8Array(6),
      dstMac: new Uint8Array(6),
      tcpFlags: 0x10,
      dscp: 0,
      dropPackets: 0n,
      dropBytes: 0n,
      dropReason: 0,
    },
  };
}

const cache = (dedupe: FlowDedupeMode = "off") =>
  new FlowCache({ activeTimeoutNs: 5n * S, idleTimeoutNs: 2n * S, dedupe });

describe("netflow cache", () => {
  test("netflow cache - deltas add up; idle and active timeouts emit and forget", () => {
    const c = cache();
    c.add([delta(3, 1, 2n, 10n * S, 10n * S)], false);
    c.add([delta(3, 1, 3n, 11n * S, 11n * S)], false);
    c.add([delta(3, 1, 1n, 10n * S, 10n * S, 2000)], false);
    expect(c.sweep(11n * S)).toEqual([]);
    // port 2000 idle since 10 s: due at 12 s; port 1000 last seen at 11 s: not yet
    const idle = c.sweep(12n * S);
    expect(idle.map((f) => [f.key.srcPort, f.reason, f.counters.packets])).toEqual([
      [2000, "idle", 1n],
    ]);
    c.add([delta(3, 1, 4n, 12n * S, 12n * S + S)], false);
    c.add([delta(3, 1, 1n, 14n * S, 14n * S)], false);
    // first packet at 10 s: an active record at 15 s with everything so far
    const active = c.sweep(15n * S);
    expect(active.map((f) => [f.reason, f.counters.packets, f.counters.bytes])).toEqual([
      ["active", 10n, 1000n],
    ]);
    expect(active[0]?.counters.firstSeenNs).toBe(10n * S);
    expect(active[0]?.counters.lastSeenNs).toBe(14n * S);
    expect(c.size).toBe(0);
  });

  test("netflow cache - fallback packets stay apart from table counts; shutdown takes all", () => {
    const c = cache();
    c.add([delta(3, 0, 5n, S, S)], false);
    c.add([delta(3, 0, 1n, S, S), delta(3, 0, 1n, S, S)], true);
    const all = c.flushAll();
    expect(all.map((f) => [f.fallback, f.reason, f.counters.packets]).sort()).toEqual([
      [false, "shutdown", 5n],
      [true, "shutdown", 2n],
    ]);
    expect(c.size).toBe(0);
  });

  test("netflow cache - dedupe: the earliest observation point owns the tuple until it expires", () => {
    const c = cache("drop");
    // egress of ifindex 3 saw it first, ingress of ifindex 7 a moment later
    c.add([delta(7, 0, 4n, 2n * S, 2n * S), delta(3, 1, 4n, S, 2n * S)], false);
    const due = c.flushAll();
    const byIf = new Map(due.map((f) => [f.key.ifindex, f.duplicate]));
    expect(byIf).toEqual(
      new Map([
        [3, false],
        [7, true],
      ]),
    );
    // nothing seen for longer than the expiry: the next point to report becomes the owner
    c.add([delta(7, 0, 1n, 10n * S, 10n * S)], false);
    expect(c.flushAll().map((f) => [f.key.ifindex, f.duplicate])).toEqual([[7, false]]);
  });

  test("netflow cache - a delta whose counts cannot be true is refused and reported; its flow keeps the rest", () => {
    const refused: [number, string][] = [];
    const c = new FlowCache({
      activeTimeoutNs: 5n * S,
      idleTimeoutNs: 2n * S,
      dedupe: "off",
      onImplausible: (d, why) => refused.push([d.key.ifindex, why]),
    });
    c.add([delta(3, 1, 4n, S, S)], false);
    // a wrapped u64 count, as once seen in a record: ~1.3e19 packets in 100 bytes each
    const wrapped = delta(3, 1, 1n, S, 2n * S);
    wrapped.counters.packets = 12559046053861954912n;
    const negative = delta(3, 1, 1n, S, 2n * S);
    negative.counters.packets = -3n;
    const tooBig = delta(3, 1, 1n, S, 2n * S);
    tooBig.counters.bytes = 5_000_000n;
    c.add([wrapped, negative, tooBig, delta(3, 1, 2n, 2n * S, 2n * S)], false);
    expect(refused.map(([i]) => i)).toEqual([3, 3, 3]);
    expect(refused[0]?.[1]).toBe("100 bytes cannot hold 12559046053861954912 IPv4 packets");
    expect(refused[1]?.[1]).toContain("negative count");
    expect(refused[2]?.[1]).toContain("more than 1048576 per packet");
    const [only, ...rest] = c.flushAll();
    expect(rest).toEqual([]);
    expect([only?.counters.packets, only?.counters.bytes]).toEqual([6n, 600n]);
  });

  test("netflow guard - the smallest and largest packets of each family pass, drops alone pass", () => {
    const d = delta(3, 1, 2n, S, S);
    d.counters.bytes = 40n;
    expect(implausibleCounters(4, d.counters)).toBeUndefined();
    expect(implausibleCounters(6, d.counters)).toBe("40 bytes cannot hold 2 IPv6 packets");
    d.counters.bytes = 2n << 20n;
    expect(implausibleCounters(6, d.counters)).toBeUndefined();
    d.counters.bytes += 1n;
    expect(implausibleCounters(6, d.counters)).toContain("per packet");
    const drops = delta(3, 1, 0n, S, S);
    drops.counters.dropPackets = 1n;
    expect(implausibleCounters(4, drops.counters)).toBeUndefined();
    drops.counters.bytes = U64_MAX + 1n;
    expect(implausibleCounters(4, drops.counters)).toContain("above u64");
  });

  test("netflow cache - dedupe off marks nothing", () => {
    const c = cache("off");
    c.add([delta(3, 1, 1n, S, S), delta(7, 0, 1n, S, S)], false);
    expect(c.flushAll().map((f) => f.duplicate)).toEqual([false, false]);
  });
});
