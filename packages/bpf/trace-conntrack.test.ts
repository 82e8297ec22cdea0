import { afterEach, describe, expect, test } from "bun:test";
import {
  type DebugRecord,
  decodeDebugRecord,
  decodeRecordType,
  decodeTraceRecord,
  FLAG_CT_REPORT,
  POLICY_ACTION,
  POLICY_DIRECTION,
  POLICY_MATCH,
  RECORD_TYPE_DEBUG,
  RECORD_TYPE_TRACE,
  TRACE_REASON,
  type TraceRecord,
} from "@periscope/wire";
import { netnsCookie, PolicyMaps, TraceProgram } from "./index.ts";
import { isRoot } from "./test-helpers.ts";
import { frame, ipPacket, type PacketSpec, TCP } from "./test-packets.ts";
import { parseCaptureRule, SettingsError } from "./trace-settings.ts";

const R = TRACE_REASON;
const C = "10.7.0.1";
const S = "10.7.0.2";

let prog: TraceProgram | undefined;
afterEach(() => {
  prog?.close();
  prog = undefined;
});

function load(opts: Parameters<typeof TraceProgram.load>[0] = {}): TraceProgram {
  prog = TraceProgram.load({ ringBufferBytes: 1 << 20, ...opts });
  return prog;
}

/** Runs each packet once on egress and returns the records it produced, in order. */
function run(
  p: TraceProgram,
  packets: PacketSpec[],
): { traces: TraceRecord[]; debug: DebugRecord[] } {
  const traces: TraceRecord[] = [];
  const debug: DebugRecord[] = [];
  for (const spec of packets) {
    expect(p.testRun(frame(spec), 1, "egress").retval).toBe(-1);
  }
  p.drain((bytes) => {
    const type = decodeRecordType(bytes);
    if (type === RECORD_TYPE_TRACE) traces.push(decodeTraceRecord(bytes));
    else if (type === RECORD_TYPE_DEBUG) debug.push(decodeDebugRecord(bytes));
    else throw new Error(`unexpected record type ${type}`);
  });
  return { traces, debug };
}

const reasons = (p: TraceProgram, packets: PacketSpec[]) =>
  run(p, packets).traces.map((r) => r.traceReason);

const tcp = (from: "c" | "s", flags: number, payload = 0): PacketSpec =>
  from === "c"
    ? { src: C, dst: S, proto: 6, sport: 40000, dport: 80, flags, payload }
    : { src: S, dst: C, proto: 6, sport: 80, dport: 40000, flags, payload };
const udp = (from: "c" | "s"): PacketSpec =>
  from === "c"
    ? { src: C, dst: S, proto: 17, sport: 5000, dport: 53, payload: 100 }
    : { src: S, dst: C, proto: 17, sport: 53, dport: 5000, payload: 120 };

/** A whole TCP connection: 36 packets (see the aggregation test for what each level keeps). */
const connection: PacketSpec[] = [
  tcp("c", TCP.SYN),
  tcp("s", TCP.SYN | TCP.ACK),
  tcp("c", TCP.ACK),
  ...Array.from({ length: 10 }, () => tcp("c", TCP.PSH | TCP.ACK, 100)),
  ...Array.from({ length: 10 }, () => tcp("s", TCP.ACK)),
  ...Array.from({ length: 10 }, () => tcp("s", TCP.PSH | TCP.ACK, 1000)),
  tcp("c", TCP.FIN | TCP.ACK),
  tcp("s", TCP.FIN | TCP.ACK),
  tcp("c", TCP.ACK),
];

describe.skipIf(!isRoot)("bpf trace connection table", () => {
  test("ct - TCP handshake, data, close and reopen get NEW/REPLY/ESTABLISHED/REOPENED", () => {
    const p = load();
    expect(
      reasons(p, [
        tcp("c", TCP.SYN),
        tcp("s", TCP.SYN | TCP.ACK),
        tcp("c", TCP.ACK),
        tcp("c", TCP.PSH | TCP.ACK, 10),
        tcp("s", TCP.FIN | TCP.ACK),
        tcp("c", TCP.ACK),
        tcp("c", TCP.SYN),
        tcp("s", TCP.SYN | TCP.ACK),
      ]),
    ).toEqual([
      R.NEW,
      R.REPLY,
      R.ESTABLISHED,
      R.ESTABLISHED,
      R.REPLY,
      R.ESTABLISHED,
      R.REOPENED,
      R.REPLY,
    ]);
    const conn = p.readConnection({
      proto: 6,
      src: S,
      sport: 80,
      dst: C,
      dport: 40000,
      ifindex: 1,
      netnsCookie: netnsCookie(undefined),
    });
    expect(conn?.initiator).toEqual({ ip: C, port: 40000 });
    // reopened: counting starts again with the new SYN
    expect(conn?.packets).toEqual([1n, 1n]);
    expect(conn?.tcpFlags).toEqual([TCP.SYN, TCP.SYN | TCP.ACK]);
    expect(conn?.closing).toBe(false);
  });

  test("ct - counters, bytes and flags per direction", () => {
    const p = load();
    run(p, connection.slice(0, 13));
    const conn = p.readConnection({
      proto: 6,
      src: C,
      sport: 40000,
      dst: S,
      dport: 80,
      ifindex: 1,
      netnsCookie: netnsCookie(undefined),
    });
    const size = (spec: PacketSpec) => frame(spec).length;
    expect(conn?.packets).toEqual([12n, 1n]);
    expect(conn?.bytes).toEqual([
      BigInt(size(tcp("c", TCP.SYN)) * 2 + size(tcp("c", TCP.ACK, 100)) * 10),
      BigInt(size(tcp("s", TCP.SYN))),
    ]);
    expect(conn?.tcpFlags).toEqual([TCP.SYN | TCP.ACK | TCP.PSH, TCP.SYN | TCP.ACK]);
    expect(conn?.lastSeenNs).toBeGreaterThanOrEqual(conn?.firstSeenNs ?? 1n << 62n);
  });

  test("ct - UDP both ways and ICMP echo (also a reply seen first)", () => {
    const p = load();
    expect(reasons(p, [udp("c"), udp("s"), udp("c"), udp("s")])).toEqual([
      R.NEW,
      R.REPLY,
      R.ESTABLISHED,
      R.REPLY,
    ]);
    const echo = (type: number, src: string, dst: string, id = 77): PacketSpec => ({
      src,
      dst,
      proto: 1,
      icmpType: type,
      icmpId: id,
      payload: 56,
    });
    expect(reasons(p, [echo(8, C, S), echo(0, S, C), echo(8, C, S), echo(0, S, C)])).toEqual([
      R.NEW,
      R.REPLY,
      R.ESTABLISHED,
      R.REPLY,
    ]);
    // a reply whose request was not seen: the other side initiated
    expect(reasons(p, [echo(0, S, C, 99), echo(8, C, S, 99)])).toEqual([R.REPLY, R.ESTABLISHED]);
    // ping to oneself: request and reply between the same endpoints
    expect(reasons(p, [echo(8, C, C, 5), echo(0, C, C, 5)])).toEqual([R.NEW, R.REPLY]);
    // IPv6 echo
    const e6 = (type: number, src: string, dst: string): PacketSpec => ({
      src,
      dst,
      proto: 58,
      icmpType: type,
      icmpId: 3,
    });
    expect(reasons(p, [e6(128, "fd00::1", "fd00::2"), e6(129, "fd00::2", "fd00::1")])).toEqual([
      R.NEW,
      R.REPLY,
    ]);
  });

  test("ct - an ICMP error about a known connection is RELATED, about an unknown one UNKNOWN", () => {
    const p = load();
    const unreachable = (quoted: PacketSpec): PacketSpec => ({
      src: S,
      dst: C,
      proto: 1,
      icmpType: 3,
      icmpCode: 3,
      quote: ipPacket(quoted).subarray(0, 28),
    });
    expect(reasons(p, [udp("c"), unreachable(udp("c"))])).toEqual([R.NEW, R.RELATED]);
    const other = { ...udp("c"), dport: 54 };
    expect(reasons(p, [unreachable(other)])).toEqual([R.UNKNOWN]);
    const conn = p.readConnection({
      proto: 17,
      src: C,
      sport: 5000,
      dst: S,
      dport: 53,
      ifindex: 1,
      netnsCookie: netnsCookie(undefined),
    });
    expect(conn?.packets).toEqual([1n, 1n]); // the error counts towards the initiator
  });

  test("ct - TCP picked up mid-connection: the higher port is the client, never NEW", () => {
    const p = load();
    expect(reasons(p, [tcp("s", TCP.ACK, 100), tcp("c", TCP.ACK)])).toEqual([
      R.REPLY,
      R.ESTABLISHED,
    ]);
    const q = load();
    expect(reasons(q, [tcp("s", TCP.SYN | TCP.ACK), tcp("c", TCP.ACK)])).toEqual([
      R.REPLY,
      R.ESTABLISHED,
    ]);
  });

  test.each([
    ["none", 36, 0],
    ["low", 25, 0],
    ["medium", 7, 0],
    ["maximum", 4, 0],
  ] as const)("aggregation %s keeps %d of 36 packets of a connection", (level, want) => {
    const p = load();
    p.setSettings({ aggregation: level, reportIntervalMs: 60_000 });
    const { traces } = run(p, connection);
    expect(traces.length).toBe(want);
    expect(p.readKernelLost()).toBe(0n);
    // the handshake's first packet per direction and the closing FINs are always there
    expect(traces[0]?.traceReason).toBe(R.NEW);
    expect(traces.filter((t) => t.data[47] === (TCP.FIN | TCP.ACK)).length).toBe(2);
    expect(traces.every((t) => (t.flags & FLAG_CT_REPORT) === 0)).toBe(true);
  });

  test("aggregation medium sends one periodic report per interval, flagged CT_REPORT", async () => {
    const p = load();
    p.setSettings({ aggregation: "medium", reportIntervalMs: 20 });
    const data = tcp("c", TCP.PSH | TCP.ACK, 100);
    expect(run(p, [tcp("c", TCP.SYN), tcp("s", TCP.SYN | TCP.ACK), data]).traces.length).toBe(3);
    expect(run(p, [data, data]).traces.length).toBe(0);
    // wait for the interval itself (kernel coarse clock, a few ms granularity)
    await Bun.sleep(60);
    const after = run(p, [data, data, data]).traces;
    expect(after.length).toBe(1);
    expect((after[0]?.flags ?? 0) & FLAG_CT_REPORT).toBe(FLAG_CT_REPORT);
  });

  test.each([
    ["tcp/80=1024", 25],
    ["tcp/80=64", 7],
    ["tcp=1024", 7],
  ] as const)(
    "aggregation medium with capture rule %s keeps %d of 36 packets (payload on a rule's port is wanted)",
    (rule, want) => {
      const p = load({ captureLen: 100 });
      p.setSettings({
        aggregation: "medium",
        reportIntervalMs: 60_000,
        captureRules: [parseCaptureRule(rule)],
      });
      const { traces } = run(p, connection);
      // with the port rule: the 20 packets with payload plus handshake and FINs; pure ACKs still aggregate
      expect(traces.length).toBe(want);
      expect(p.readKernelLost()).toBe(0n);
    },
  );

  test("capture rules: first match by protocol and either port, else the default length", () => {
    const p = load({ captureLen: 100 });
    p.setSettings({
      captureRules: [parseCaptureRule("udp/53=64"), parseCaptureRule("tcp=42")],
    });
    const { traces } = run(p, [
      udp("c"),
      udp("s"),
      tcp("c", TCP.SYN, 200),
      {
        ...udp("c"),
        sport: 6000,
        dport: 7000,
        payload: 200,
      },
    ]);
    expect(traces.map((t) => t.capLen)).toEqual([64, 64, 42, 100]);
    p.setSettings({ captureRules: [] });
    expect(run(p, [udp("c")]).traces[0]?.capLen).toBe(100);
  });

  test("VLAN and QinQ frames hash and track like untagged ones", () => {
    const p = load();
    const { traces } = run(p, [
      udp("c"),
      { ...udp("s"), vlans: [100] },
      { ...udp("c"), vlans: [200, 100] },
    ]);
    expect(traces.map((t) => t.traceReason)).toEqual([R.NEW, R.REPLY, R.ESTABLISHED]);
    const hashes = new Set(traces.map((t) => t.flowHash));
    expect(hashes.size).toBe(1);
    expect(traces[0]?.flowHash).not.toBe(0);
  });

  test("every fragment of a datagram hashes the same; whole datagrams hash with ports", () => {
    const p = load();
    const base = { ...udp("c"), payload: 100 };
    const { traces } = run(p, [
      { ...base, fragWord: 0x2000 }, // first: MF, offset 0, with the UDP header
      { ...base, proto: 17, fragWord: 0x2000 | 16 }, // middle
      { ...base, proto: 17, fragWord: 32 }, // last
      base, // not fragmented
    ]);
    expect(traces.length).toBe(4);
    expect(traces[1]?.flowHash).toBe(traces[0]?.flowHash ?? -1);
    expect(traces[2]?.flowHash).toBe(traces[0]?.flowHash ?? -1);
    expect(traces[3]?.flowHash).not.toBe(traces[0]?.flowHash ?? -1);
    expect(traces.map((t) => t.traceReason)).toEqual([R.NEW, R.ESTABLISHED, R.ESTABLISHED, R.NEW]);
  });

  test("debug records: connection created (v4 and v6) and, at aggregation none, matched", () => {
    const p = load();
    p.setSettings({ debug: true });
    const { traces, debug } = run(p, [
      tcp("c", TCP.SYN),
      tcp("s", TCP.SYN | TCP.ACK),
      { src: "fd00::1", dst: "fd00::2", proto: 17, sport: 1, dport: 2 },
    ]);
    expect(traces.length).toBe(3);
    expect(debug.map((d) => d.subtype)).toEqual([50, 8, 53]);
    expect(debug[0]).toMatchObject({ arg2: 6, arg3: ((40000 << 16) | 80) >>> 0, ifindex: 1 });
    expect(debug[0]?.flowHash).toBe(traces[0]?.flowHash ?? -1);
    expect(debug[1]).toMatchObject({ arg1: 1, arg2: 6 }); // matched, from the responder
    p.setSettings({ debug: false });
    expect(run(p, [tcp("c", TCP.ACK)]).debug).toEqual([]);
  });

  test("policy: a denied connection is dropped on every packet, cached in its entry, with a debug record", () => {
    const p = load();
    const maps = new PolicyMaps((n) => p.mapFd(n));
    try {
      const rule = {
        id: 77,
        action: POLICY_ACTION.DENY,
        direction: POLICY_DIRECTION.INGRESS,
        subject: 0,
        matchType: POLICY_MATCH.L3_L4,
        proto: 6,
        ports: { from: 80, to: 80 },
      };
      maps.install({
        rules: [rule],
        set: { nRules: 1, selected: [1n, 0n], allowSelected: [0n, 0n], enforce: 1n },
        devices: [],
        endpoints: [{ addr: Uint8Array.from([10, 7, 0, 2]), bits: 1n }],
      });
      p.setSettings({ debug: true });
      const syn = frame(tcp("c", TCP.SYN));
      expect(p.testRun(syn, 1, "ingress").retval).toBe(2); // TC_ACT_SHOT
      expect(p.testRun(syn, 1, "ingress").retval).toBe(2);
      const debug: DebugRecord[] = [];
      let traces = 0;
      p.drain((b) => {
        const type = decodeRecordType(b);
        if (type === RECORD_TYPE_DEBUG) debug.push(decodeDebugRecord(b));
        if (type === RECORD_TYPE_TRACE) traces++;
      });
      expect(traces).toBe(0); // dropped packets are reported as drops, not traces
      expect(debug.filter((d) => d.subtype === 5).map((d) => d.arg1)).toEqual([77, 77]);
      const conn = p.readConnection({
        proto: 6,
        src: C,
        sport: 40000,
        dst: S,
        dport: 80,
        ifindex: 1,
        netnsCookie: netnsCookie(undefined),
      });
      expect(conn).toMatchObject({
        policyAction: POLICY_ACTION.DENY,
        policyRuleId: 77,
        policyRev: maps.revision(),
      });
      // another port of the same peers is not denied
      expect(p.testRun(frame({ ...tcp("c", TCP.SYN), dport: 81 }), 1, "ingress").retval).toBe(-1);
    } finally {
      maps.close();
    }
  });

  test("settings: bad values are refused naming the field, nothing is written", () => {
    const p = load();
    p.setSettings({ aggregation: "maximum" });
    expect(() => p.setSettings({ aggregation: "loud" as never })).toThrow(SettingsError);
    expect(() => p.setSettings({ reportIntervalMs: -1 })).toThrow(/reportIntervalMs/);
    expect(() =>
      p.setSettings({ captureRules: Array.from({ length: 9 }, () => parseCaptureRule("tcp=1")) }),
    ).toThrow(/captureRules/);
    expect(() => parseCaptureRule("udp/99999=5")).toThrow(/port/);
    expect(() => parseCaptureRule("udp/53=0")).toThrow(/len/);
    expect(() => parseCaptureRule("gre/1=5")).toThrow(/unknown protocol/);
    expect(() => parseCaptureRule("udp53")).toThrow(/<proto>/);
    expect(p.settings.aggregation).toBe("maximum");
    expect(parseCaptureRule("any/443=256")).toEqual({ proto: 0, port: 443, len: 256 });
  });

  test("load sizes the connection table: a full LRU table evicts, packets are still traced", () => {
    const p = load({ ctEntries: 4 });
    const many = Array.from({ length: 40 }, (_, i) => ({ ...udp("c"), sport: 10000 + i }));
    const { traces } = run(p, many);
    expect(traces.length).toBe(40);
    expect(traces.every((t) => t.traceReason === R.NEW)).toBe(true);
    expect(() => TraceProgram.load({ ctEntries: 0 })).toThrow(RangeError);
  });
});
