import { beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import {
  decodePolicyVerdictRecord,
  encodePolicyDevKey,
  encodePolicyEpKey,
  encodePolicyRule,
  encodePolicySet,
  encodePolicyVerdictRecord,
  FLAG_L3,
  type MalformedReason,
  POLICY_ACTION,
  POLICY_DEV_KEY_LAYOUT,
  POLICY_DIRECTION,
  POLICY_EP_KEY_LAYOUT,
  POLICY_MATCH,
  POLICY_RULE_LAYOUT,
  POLICY_SET_LAYOUT,
  POLICY_VERDICT_FIXED_SIZE,
  POLICY_VERDICT_LAYOUT,
  type PolicyVerdictRecordInit,
  readFlowHash,
  type StructLayout,
} from "./index.ts";
import {
  type BtfStructs,
  bpfBuildDir,
  expectMatchesBtf,
  loadBtfStructs,
  malformed,
} from "./test-helpers.ts";

let btf: BtfStructs;

/** policy.h is compiled into the trace object. */
beforeAll(async () => {
  btf = await loadBtfStructs(join(bpfBuildDir, "trace.bpf.o"));
});

test.each<[string, StructLayout]>([
  ["pscope_policy_verdict", POLICY_VERDICT_LAYOUT],
  ["pscope_policy_rule", POLICY_RULE_LAYOUT],
  ["pscope_policy_set", POLICY_SET_LAYOUT],
  ["pscope_policy_dev_key", POLICY_DEV_KEY_LAYOUT],
  ["pscope_policy_ep_key", POLICY_EP_KEY_LAYOUT],
])("wire policy - %s offsets and sizes match the BTF of trace.bpf.o", (name, layout) => {
  expectMatchesBtf(btf, name, layout);
});

const verdict: PolicyVerdictRecordInit = {
  flags: FLAG_L3,
  cpu: 1,
  origLen: 60,
  tsBootNs: 123_456_789n,
  ifindex: 7,
  ruleId: 42,
  flowHash: 0xabcdef01,
  l3Proto: 0x0800,
  matchType: POLICY_MATCH.L3_L4,
  action: POLICY_ACTION.DENY,
  netnsCookie: 99n,
  direction: POLICY_DIRECTION.EGRESS,
  obsPoint: 11,
  data: new Uint8Array([0x45, 1, 2, 3]),
};

test("wire policy - verdict records round-trip and carry the flow hash at 32", () => {
  const bytes = encodePolicyVerdictRecord(verdict);
  expect(bytes.length).toBe(POLICY_VERDICT_FIXED_SIZE + 4);
  const rec = decodePolicyVerdictRecord(bytes);
  expect({ ...rec, data: Array.from(rec.data) }).toEqual({
    ...verdict,
    type: 5,
    version: 1,
    capLen: 4,
    data: [0x45, 1, 2, 3],
  });
  expect(readFlowHash(bytes)).toBe(0xabcdef01);
});

test.each<[string, (b: Uint8Array) => Uint8Array, MalformedReason]>([
  ["too short", (b) => b.subarray(0, 40), "too_short"],
  ["bad version", (b) => Object.assign(b.slice(), { 2: 9 }), "bad_version"],
  ["trailing bytes", (b) => new Uint8Array([...b, 0]), "trailing_bytes"],
  ["wrong type", (b) => Object.assign(b.slice(), { 0: 4 }), "wrong_type"],
])("wire policy - a verdict record with %s is refused", (_what, mangle, reason) => {
  const err = malformed(() =>
    decodePolicyVerdictRecord(mangle(encodePolicyVerdictRecord(verdict))),
  );
  expect(err.reason).toBe(reason);
});

test("wire policy - rule, set and key encoders write the named offsets", () => {
  const r = encodePolicyRule({
    id: 0x01020304,
    action: POLICY_ACTION.AUDIT,
    direction: POLICY_DIRECTION.INGRESS,
    subject: 5,
    matchType: POLICY_MATCH.L4_ONLY,
    proto: 17,
    peer: { family: 4, addr: new Uint8Array([10, 0, 0, 0]), prefixLen: 8 },
    ports: { from: 53, to: 54 },
  });
  expect(Array.from(r.subarray(0, 20))).toEqual([
    4, 3, 2, 1, 2, 1, 5, 3, 17, 4, 8, 1, 53, 0, 54, 0, 10, 0, 0, 0,
  ]);
  const s = new DataView(
    encodePolicySet({ nRules: 3, selected: [1n, 2n], allowSelected: [4n, 8n], enforce: 16n })
      .buffer,
  );
  expect([0, 8, 16, 24, 32, 40].map((o) => s.getBigUint64(o, true))).toEqual([
    3n,
    1n,
    2n,
    4n,
    8n,
    16n,
  ]);
  expect(Array.from(encodePolicyDevKey(1, 0x0102n, 9))).toEqual([
    2, 1, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0,
  ]);
  expect(Array.from(encodePolicyEpKey(1, new Uint8Array([10, 7, 0, 2])))).toEqual([
    1,
    4,
    0,
    0,
    10,
    7,
    0,
    2,
    ...new Array(12).fill(0),
  ]);
});
