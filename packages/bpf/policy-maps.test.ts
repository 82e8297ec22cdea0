import { describe, expect, test } from "bun:test";
import { ethernet, ipv4, ipv6, tcp, udp } from "@periscope/testing";
import {
  DROP_POLICY_DENIED,
  DROP_SOURCE,
  decodePolicyVerdictRecord,
  type KernelPolicyRule,
  POLICY_ACTION,
  POLICY_DIRECTION,
  POLICY_MATCH,
  type PolicyVerdictRecord,
  RECORD_TYPE_DROP,
  RECORD_TYPE_POLICY_VERDICT,
} from "@periscope/wire";
import {
  type KernelRuleSet,
  netnsCookie,
  POLICY_SLOT_GRACE_MS,
  PolicyMaps,
  TraceProgram,
} from "./index.ts";
import { isRoot } from "./test-helpers.ts";

const TC_ACT_SHOT = 2;
const TC_ACT_UNSPEC = -1;
const WEB = new Uint8Array([10, 7, 0, 2]);

function tcpSyn(src: string, dst: string, sport: number, dport: number): Uint8Array {
  return ethernet(
    { etherType: 0x0800 },
    ipv4({ src, dst, protocol: 6 }, tcp(sport, dport, ["SYN"])),
  );
}

interface Seen {
  verdicts: PolicyVerdictRecord[];
  /** Policy drop records: [source, reason]. */
  drops: [number, number][];
}

function drainPolicy(prog: TraceProgram): Seen {
  const seen: Seen = { verdicts: [], drops: [] };
  prog.drain((b) => {
    if (b[0] === RECORD_TYPE_POLICY_VERDICT) seen.verdicts.push(decodePolicyVerdictRecord(b));
    else if (b[0] === RECORD_TYPE_DROP) {
      const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
      seen.drops.push([b[1] ?? 0, v.getUint32(28, true)]);
    }
  });
  return seen;
}

function ruleSet(
  rules: KernelPolicyRule[],
  opts: {
    allow?: boolean;
    enforce?: boolean;
    endpoints?: Uint8Array[];
    devices?: KernelRuleSet["devices"];
  },
): KernelRuleSet {
  const dirs: [bigint, bigint] = [0n, 0n];
  for (const r of rules)
    dirs[r.direction === POLICY_DIRECTION.INGRESS ? 0 : 1] |= 1n << BigInt(r.subject);
  return {
    rules,
    set: {
      nRules: rules.length,
      selected: dirs,
      allowSelected: opts.allow ? dirs : [0n, 0n],
      enforce: opts.enforce === false ? 0n : 1n,
    },
    devices: opts.devices ?? [],
    endpoints: (opts.endpoints ?? [WEB]).map((addr) => ({ addr, bits: 1n })),
  };
}

const denyHttp: KernelPolicyRule = {
  id: 42,
  action: POLICY_ACTION.DENY,
  direction: POLICY_DIRECTION.INGRESS,
  subject: 0,
  matchType: POLICY_MATCH.L3_L4,
  proto: 6,
  peer: { family: 4, addr: new Uint8Array([10, 6, 0, 0]), prefixLen: 16 },
  ports: { from: 80, to: 80 },
};

function withPolicy(fn: (prog: TraceProgram, maps: PolicyMaps) => void): void {
  const prog = TraceProgram.load({ ringBufferBytes: 1 << 16 });
  const maps = new PolicyMaps((n) => prog.mapFd(n));
  try {
    fn(prog, maps);
  } finally {
    maps.close();
    prog.close();
  }
}

describe.skipIf(!isRoot)("bpf policy maps", () => {
  test("policy maps - no policy: revision 0, packets pass, no verdicts", () => {
    withPolicy((prog, maps) => {
      expect(maps.revision()).toBe(0);
      expect(prog.testRun(tcpSyn("10.6.0.1", "10.7.0.2", 1000, 80), 1, "ingress").retval).toBe(
        TC_ACT_UNSPEC,
      );
      expect(drainPolicy(prog).verdicts).toEqual([]);
    });
  });

  test("policy maps - a deny rule drops the connection with a verdict and a policy drop", () => {
    withPolicy((prog, maps) => {
      expect(maps.install(ruleSet([denyHttp], {}))).toBe(1);
      const denied = tcpSyn("10.6.0.1", "10.7.0.2", 1001, 80);
      expect(prog.testRun(denied, 1, "ingress").retval).toBe(TC_ACT_SHOT);
      expect(prog.testRun(denied, 1, "ingress").retval).toBe(TC_ACT_SHOT);
      const seen = drainPolicy(prog);
      expect(seen.verdicts.length).toBe(1); // decided once per connection
      const v = seen.verdicts[0];
      expect(v?.action).toBe(POLICY_ACTION.DENY);
      expect(v?.ruleId).toBe(42);
      expect(v?.matchType).toBe(POLICY_MATCH.L3_L4);
      expect(v?.direction).toBe(POLICY_DIRECTION.INGRESS);
      expect(v?.data.subarray(0, denied.length)).toEqual(denied);
      expect(seen.drops).toEqual([
        [DROP_SOURCE.POLICY, DROP_POLICY_DENIED],
        [DROP_SOURCE.POLICY, DROP_POLICY_DENIED],
      ]);
      // Other port, other peer, other subject: not this rule.
      expect(prog.testRun(tcpSyn("10.6.0.1", "10.7.0.2", 1002, 81), 1, "ingress").retval).toBe(
        TC_ACT_UNSPEC,
      );
      expect(prog.testRun(tcpSyn("10.5.0.1", "10.7.0.2", 1003, 80), 1, "ingress").retval).toBe(
        TC_ACT_UNSPEC,
      );
      expect(prog.testRun(tcpSyn("10.6.0.1", "10.7.0.3", 1004, 80), 1, "ingress").retval).toBe(
        TC_ACT_UNSPEC,
      );
      const rest = drainPolicy(prog);
      // Selected by a deny-only policy: forwarded with a verdict (match NONE, rule 0).
      expect(rest.verdicts.map((r) => [r.action, r.matchType, r.ruleId])).toEqual([
        [POLICY_ACTION.ALLOW, POLICY_MATCH.NONE, 0],
        [POLICY_ACTION.ALLOW, POLICY_MATCH.NONE, 0],
      ]);
      expect(rest.drops).toEqual([]);
    });
  });

  test("policy maps - an allow rule denies the rest of its direction; audit forwards", () => {
    withPolicy((prog, maps) => {
      const allowHttp = { ...denyHttp, id: 7, action: POLICY_ACTION.ALLOW };
      maps.install(ruleSet([allowHttp], { allow: true }));
      expect(prog.testRun(tcpSyn("10.6.0.1", "10.7.0.2", 2001, 80), 1, "ingress").retval).toBe(
        TC_ACT_UNSPEC,
      );
      const udpPkt = ethernet(
        { etherType: 0x0800 },
        ipv4({ src: "10.6.0.1", dst: "10.7.0.2", protocol: 17 }, udp(2002, 53)),
      );
      expect(prog.testRun(udpPkt, 1, "ingress").retval).toBe(TC_ACT_SHOT);
      // Egress from the subject is not selected by the ingress rule.
      expect(prog.testRun(tcpSyn("10.7.0.2", "10.6.0.1", 2003, 22), 1, "egress").retval).toBe(
        TC_ACT_UNSPEC,
      );
      let seen = drainPolicy(prog);
      expect(seen.verdicts.map((r) => [r.action, r.matchType, r.ruleId])).toEqual([
        [POLICY_ACTION.ALLOW, POLICY_MATCH.L3_L4, 7],
        [POLICY_ACTION.DENY, POLICY_MATCH.NONE, 0],
      ]);
      // The same rules in audit mode: the connection passes, reported as AUDIT.
      expect(maps.install(ruleSet([allowHttp], { allow: true, enforce: false }))).toBe(2);
      expect(prog.testRun(udpPkt, 1, "ingress").retval).toBe(TC_ACT_UNSPEC);
      seen = drainPolicy(prog);
      expect(seen.verdicts.map((r) => r.action)).toEqual([POLICY_ACTION.AUDIT]);
      expect(seen.drops).toEqual([]);
    });
  });

  test("policy maps - device subjects follow the tc hook; IPv6 peers match by prefix", () => {
    withPolicy((prog, maps) => {
      // BPF_PROG_TEST_RUN runs tc programs on the loopback device of this namespace.
      const device = { netnsCookie: netnsCookie(undefined), ifindex: 1, bits: 1n };
      const v6Peer: KernelPolicyRule = {
        id: 9,
        action: POLICY_ACTION.DENY,
        direction: POLICY_DIRECTION.EGRESS,
        subject: 0,
        matchType: POLICY_MATCH.L3_ONLY,
        proto: 0,
        peer: {
          family: 6,
          addr: new Uint8Array([0xfd, 0, 0, 0x0a, ...new Array(12).fill(0)]),
          prefixLen: 32,
        },
      };
      maps.install(ruleSet([v6Peer], { endpoints: [], devices: [device] }));
      const pkt = (dst: string, sport: number) =>
        ethernet(
          { etherType: 0x86dd },
          ipv6({ src: "fd00:1::1", dst, nextHeader: 17 }, udp(sport, 53)),
        );
      expect(prog.testRun(pkt("fd00:a::5", 3001), 1, "egress").retval).toBe(TC_ACT_SHOT);
      expect(prog.testRun(pkt("fd00:b::5", 3002), 1, "egress").retval).toBe(TC_ACT_UNSPEC);
      // At tc ingress the device is an ingress subject: the egress rule does not apply.
      expect(prog.testRun(pkt("fd00:a::5", 3003), 1, "ingress").retval).toBe(TC_ACT_UNSPEC);
      const seen = drainPolicy(prog);
      expect(seen.verdicts.map((r) => [r.direction, r.action, r.ruleId])).toEqual([
        [POLICY_DIRECTION.EGRESS, POLICY_ACTION.DENY, 9],
        [POLICY_DIRECTION.EGRESS, POLICY_ACTION.ALLOW, 0],
      ]);
    });
  });

  test("policy maps - a new revision re-decides live connections; clear allows all", () => {
    withPolicy((prog, maps) => {
      const pkt = tcpSyn("10.6.0.1", "10.7.0.2", 4001, 80);
      maps.install(ruleSet([{ ...denyHttp, ports: { from: 81, to: 90 } }], {}));
      expect(prog.testRun(pkt, 1, "ingress").retval).toBe(TC_ACT_UNSPEC);
      maps.install(ruleSet([denyHttp], {}));
      const slot1Left = performance.now();
      expect(prog.testRun(pkt, 1, "ingress").retval).toBe(TC_ACT_SHOT);
      expect(maps.clear()).toBe(3); // slot 1 again: not before its grace period ran out
      expect(performance.now() - slot1Left).toBeGreaterThanOrEqual(POLICY_SLOT_GRACE_MS - 1);
      expect(prog.testRun(pkt, 1, "ingress").retval).toBe(TC_ACT_UNSPEC);
      // Slot 0 again, rewritten: revision 2's endpoint is gone.
      maps.install(ruleSet([denyHttp], { endpoints: [new Uint8Array([10, 7, 0, 9])] }));
      expect(prog.testRun(pkt, 1, "ingress").retval).toBe(TC_ACT_UNSPEC);
      expect(maps.revision()).toBe(4);
    });
  });
});
