import { beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import {
  decodeFlowKey,
  decodeFlowValue,
  FLOW_KEY_LAYOUT,
  FLOW_SPILL_LAYOUT,
  FLOW_VALUE_LAYOUT,
  FlowTableDecodeError,
  mergeFlowCounters,
} from "./flow-table.ts";
import type { StructLayout } from "./layout.ts";
import { type BtfStructs, bpfBuildDir, expectMatchesBtf, loadBtfStructs } from "./test-helpers.ts";

let btf: BtfStructs;

beforeAll(async () => {
  btf = await loadBtfStructs(join(bpfBuildDir, "trace.bpf.o"));
});

test.each<[string, StructLayout]>([
  ["pscope_flow_key", FLOW_KEY_LAYOUT],
  ["pscope_flow_value", FLOW_VALUE_LAYOUT],
  ["pscope_flow_spill", FLOW_SPILL_LAYOUT],
])("flow table layout - %s offsets and sizes match the BTF", (name, layout) => {
  expectMatchesBtf(btf, name, layout);
});

test("flow table - key decodes addresses, ports, hook and ICMP fields", () => {
  const buf = new Uint8Array(FLOW_KEY_LAYOUT.size);
  const v = new DataView(buf.buffer);
  v.setBigUint64(0, 77n, true);
  v.setUint32(8, 5, true);
  buf.set([4, 17, 1, 0], 12);
  buf.set([10, 0, 0, 1], 16);
  buf.set([10, 0, 0, 2], 32);
  v.setUint16(48, 4000, true);
  v.setUint16(50, 53, true);
  expect(decodeFlowKey(buf)).toEqual({
    netnsCookie: 77n,
    ifindex: 5,
    family: 4,
    proto: 17,
    direction: 1,
    icmpType: 0,
    icmpCode: 0,
    srcAddr: new Uint8Array([10, 0, 0, 1]),
    dstAddr: new Uint8Array([10, 0, 0, 2]),
    srcPort: 4000,
    dstPort: 53,
  });
});

test("flow table - a bad family or a short buffer is refused with the reason", () => {
  expect(() => decodeFlowKey(new Uint8Array(FLOW_KEY_LAYOUT.size))).toThrow(
    new FlowTableDecodeError("flow key family must be 4 or 6, got 0"),
  );
  expect(() => decodeFlowValue(new Uint8Array(10))).toThrow("flow value needs 80 bytes, got 10");
});

test("flow table - merging two CPUs' counters sums and widens the time range", () => {
  const value = (first: bigint, last: bigint, pk: bigint, flags: number) => {
    const buf = new Uint8Array(FLOW_VALUE_LAYOUT.size);
    const v = new DataView(buf.buffer);
    v.setBigUint64(0, first, true);
    v.setBigUint64(8, last, true);
    v.setBigUint64(16, pk, true);
    v.setBigUint64(24, pk * 100n, true);
    buf[52] = flags;
    return decodeFlowValue(buf);
  };
  const a = value(50n, 60n, 2n, 0x02);
  mergeFlowCounters(a, value(40n, 55n, 3n, 0x10));
  mergeFlowCounters(a, value(0n, 0n, 0n, 0));
  expect([a.firstSeenNs, a.lastSeenNs, a.packets, a.bytes, a.tcpFlags]).toEqual([
    40n,
    60n,
    5n,
    500n,
    0x12,
  ]);
});
