import { describe, expect, test } from "bun:test";
import { DropReason, FlowType, TraceObservationPoint, Verdict } from "@periscope/proto";
import { ethernet, ipv4, ipv6, tcp, udp } from "@periscope/testing";
import {
  DROP_SOURCE,
  DROP_VERSION,
  decodeDropRecord,
  encodeDropRecord,
  FLAG_L3,
  RECORD_TYPE_DROP,
} from "@periscope/wire";
import { decodeDropFlow } from "./drop.ts";
import { humanizeKernelReason } from "./drop-reasons.ts";
import { formatCompact } from "./format/compact.ts";
import { flowTypeText } from "./format/flow-type.ts";

/** Two names of this test's made-up kernel table (values differ between kernels anyway). */
const names = new Map([
  [3, "NO_SOCKET"],
  [12, "NETFILTER_DROP"],
]);
const ctx = {
  nodeName: "node-a",
  bootToRealtimeNs: 1_700_000_000_000_000_000n,
  uuid: () => "u-1",
  dropReasonName: (r: number) => names.get(r),
  dropLocationName: (l: bigint) => (l === 0xffffffff81000000n ? "tcp_v4_rcv+0x2a" : undefined),
  ifName: (ifindex: number, cookie: bigint) =>
    ifindex === 5 && cookie === 9n ? "veth0" : undefined,
};

function drop(
  data: Uint8Array,
  init: { source?: number; reason: number; flags?: number; obs?: number },
) {
  return decodeDropRecord(
    encodeDropRecord({
      type: RECORD_TYPE_DROP,
      dropSource: init.source ?? DROP_SOURCE.KERNEL,
      version: DROP_VERSION,
      flags: init.flags ?? FLAG_L3,
      cpu: 0,
      origLen: data.length,
      tsBootNs: 5_000_000_000n,
      ifindex: 5,
      reason: init.reason,
      flowHash: 1,
      l3Proto: (data[0] ?? 0) >> 4 === 6 ? 0x86dd : 0x0800,
      obsPoint: init.obs ?? 0,
      netnsCookie: 9n,
      location: 0xffffffff81000000n,
      data,
    }),
  );
}

describe("flow drop", () => {
  test("flow drop - kernel NO_SOCKET for a TCP SYN: tuple, reasons, type text", () => {
    const pkt = ipv4({ src: "10.1.0.1", dst: "10.1.0.2", protocol: 6 }, tcp(40000, 9, ["SYN"]));
    const f = decodeDropFlow(drop(pkt, { reason: 3 }), ctx);
    expect(f.verdict).toBe(Verdict.DROPPED);
    expect(f.Type).toBe(FlowType.L3_L4);
    expect(f.eventType).toMatchObject({ type: 1, subType: DropReason.SOCKET_LOOKUP_FAILED });
    expect(f.dropReasonDesc).toBe(DropReason.SOCKET_LOOKUP_FAILED);
    expect(f.dropReason).toBe(DropReason.SOCKET_LOOKUP_FAILED);
    expect(f.extDropReasonDesc).toBe("NO_SOCKET");
    expect(f.IP).toMatchObject({ source: "10.1.0.1", destination: "10.1.0.2" });
    expect(f.l4?.protocol.case).toBe("TCP");
    expect(f.l4?.protocol.value).toMatchObject({ sourcePort: 40000, destinationPort: 9 });
    expect(f.Summary).toBe("TCP Flags: SYN");
    expect(f.interface).toMatchObject({ index: 5, name: "veth0" });
    expect(f.time?.seconds).toBe(1_700_000_005n);
    expect(flowTypeText(f)).toBe("No socket");
    expect(f.file?.name).toBe("tcp_v4_rcv+0x2a");
  });

  test("flow drop - kernel NETFILTER_DROP over IPv6 UDP maps to POLICY_DENY", () => {
    const pkt = ipv6({ src: "fd00::1", dst: "fd00::2", nextHeader: 17 }, udp(5353, 53));
    const f = decodeDropFlow(drop(pkt, { reason: 12 }), ctx);
    expect(f.dropReasonDesc).toBe(DropReason.POLICY_DENY);
    expect(f.IP).toMatchObject({ source: "fd00::1", destination: "fd00::2" });
    expect(f.Summary).toBe("UDP");
    const line = formatCompact({
      nodeName: "node-a",
      time: f.time,
      responseTypes: { case: "flow", value: f },
    } as Parameters<typeof formatCompact>[0]);
    expect(line).toContain("[fd00::1]:5353");
    expect(line).toContain("Netfilter drop DROPPED (UDP)");
  });

  test("flow drop - unknown kernel reason value keeps its number, maps to UNKNOWN", () => {
    const pkt = ipv4({ src: "10.1.0.1", dst: "10.1.0.2", protocol: 17 }, udp(1, 2));
    const f = decodeDropFlow(drop(pkt, { reason: 77 }), ctx);
    expect(f.extDropReasonDesc).toBe("REASON_77");
    expect(f.dropReasonDesc).toBe(DropReason.DROP_REASON_UNKNOWN);
  });

  test("flow drop - policy drop from an Ethernet frame is POLICY_DENIED at its tc hook", () => {
    const frame = ethernet(
      { src: "0a:00:00:00:00:0a", dst: "0b:00:00:00:00:0b", etherType: 0x0800 },
      ipv4({ src: "10.1.0.1", dst: "10.1.0.2", protocol: 6 }, tcp(1234, 80, ["SYN"])),
    );
    const f = decodeDropFlow(
      drop(frame, { source: DROP_SOURCE.POLICY, reason: 133, flags: 0, obs: 10 }),
      ctx,
    );
    expect(f.dropReasonDesc).toBe(DropReason.POLICY_DENIED);
    expect(f.eventType?.subType).toBe(133);
    expect(f.file).toBeUndefined(); // policy drops have no kernel location
    expect(f.extDropReasonDesc).toBe("");
    expect(f.traceObservationPoint).toBe(TraceObservationPoint.FROM_NETWORK);
    expect(f.ethernet?.source).toBe("0a:00:00:00:00:0a");
    expect(flowTypeText(f)).toBe("Policy denied");
  });

  test("flow drop - no captured bytes still gives a flow without layers", () => {
    const f = decodeDropFlow(drop(new Uint8Array(0), { reason: 3 }), ctx);
    expect(f.IP).toBeUndefined();
    expect(f.Summary).toBe("");
    expect(f.extDropReasonDesc).toBe("NO_SOCKET");
  });

  test.each([
    ["NO_SOCKET", "No socket"],
    ["NETFILTER_DROP", "Netfilter drop"],
    ["TCP_CSUM", "TCP CSUM"],
    ["IP_INADDRERRORS", "IP inaddrerrors"],
  ])("flow drop - %s reads as %s", (name, text) => {
    expect(humanizeKernelReason(name)).toBe(text);
  });
});
