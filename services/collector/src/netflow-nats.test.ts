import { describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import type { NetflowRecord } from "@periscope/netflow";
import { netflowV1 } from "@periscope/proto";
import { NatsNetflowExporter } from "./netflow-nats.ts";

const record: NetflowRecord = {
  family: 4,
  srcAddr: new Uint8Array([10, 0, 0, 1]),
  dstAddr: new Uint8Array([10, 0, 0, 2]),
  srcPort: 40000,
  dstPort: 80,
  proto: 6,
  icmpType: 0,
  icmpCode: 0,
  ifindex: 7,
  ifname: "eth0",
  direction: "egress",
  bytes: 1500n,
  packets: 3n,
  firstSeenMs: 1_700_000_000_123,
  lastSeenMs: 1_700_000_000_456,
  tcpFlags: 0x12,
  dscp: 10,
  srcMac: new Uint8Array([2, 0, 0, 0, 0, 1]),
  dstMac: new Uint8Array([2, 0, 0, 0, 0, 2]),
  rttNs: 1_500_000_123n,
  duplicate: false,
  endReason: "active",
  node: "n1",
  agentIp: "192.0.2.9",
  srcEndpoint: { namespace: "default", podName: "client" },
};

describe("netflow NATS exporter", () => {
  test("netflow nats - records become NetObserv-numbered protobuf, with the losses since the last message", async () => {
    const sent: Uint8Array[] = [];
    const totals = { fallbackLostPackets: 0n, exportDroppedRecords: 0n };
    const e = new NatsNetflowExporter(
      {
        publish: (s, p) => (s === "periscope.netflows.n1" ? sent.push(p) : 0),
        connected: () => true,
      },
      "periscope.netflows.n1",
      () => totals,
    );
    await e.export([record]);
    totals.fallbackLostPackets = 5n;
    totals.exportDroppedRecords = 2n;
    await e.export([record]);
    await e.export([record]);
    const msgs = sent.map((b) => fromBinary(netflowV1.NetflowRecordsSchema, b));
    expect(
      msgs.map((m) => m.lost && [m.lost.fallbackLostPackets, m.lost.exportDroppedRecords]),
    ).toEqual([undefined, [5n, 2n], undefined]);
    const r = msgs[0]?.entries[0];
    expect(r?.ethProtocol).toBe(0x0800);
    expect(r?.direction).toBe(1);
    expect(r?.network?.srcAddr?.ipFamily).toEqual({ case: "ipv4", value: 0x0a000001 });
    expect(r?.agentIp?.ipFamily).toEqual({ case: "ipv4", value: 0xc0000209 });
    expect(r?.dataLink?.srcMac).toBe(0x020000000001n);
    expect([r?.bytes, r?.packets, r?.flags, r?.network?.dscp]).toEqual([1500n, 3n, 0x12, 10]);
    expect(r?.timeFlowStart?.nanos).toBe(123_000_000);
    expect(r?.timeFlowRtt).toMatchObject({ seconds: 1n, nanos: 500_000_123 });
    expect([r?.interface, r?.ifindex, r?.endReason, r?.node]).toEqual([
      "eth0",
      7,
      netflowV1.EndReason.ACTIVE,
      "n1",
    ]);
    expect(r?.srcEndpoint?.podName).toBe("client");
    expect(r?.dstEndpoint).toBeUndefined();
  });

  test("netflow nats - a batch while disconnected fails (the export queue counts it)", async () => {
    const e = new NatsNetflowExporter(
      { publish: () => {}, connected: () => false },
      "periscope.netflows.n1",
    );
    await expect(e.export([record])).rejects.toThrow("NATS is not connected");
  });
});
