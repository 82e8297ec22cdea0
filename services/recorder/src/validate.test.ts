import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { recorder } from "@periscope/proto";
import { parseCidrText, planRecording } from "./validate.ts";

const any4 = { sourceCidr: "0.0.0.0/0", destinationCidr: "0.0.0.0/0" };

function startOf(init: Parameters<typeof create<typeof recorder.StartRecordingSchema>>[1]) {
  return create(recorder.StartRecordingSchema, init);
}

describe("recording validation", () => {
  test("validate - a full request becomes a plan", () => {
    const plan = planRecording(
      startOf({
        filesink: { filePrefix: "web1" },
        include: [
          {
            sourceCidr: "10.1.2.3",
            sourcePort: 1234,
            destinationCidr: "10.0.0.0/8",
            destinationPort: 80,
            protocol: recorder.Protocol.TCP,
          },
          { sourceCidr: "fd00::/64", destinationCidr: "::/0", protocol: recorder.Protocol.SCTP },
        ],
        maxCaptureLength: 100,
        stopCondition: {
          packetsCapturedCount: 5n,
          bytesCapturedCount: 7n,
          timeElapsed: durationFromMs(2500),
        },
      }),
    );
    expect(plan).toEqual({
      prefix: "web1",
      filters: [
        {
          family: 4,
          proto: 6,
          srcAddr: "10.1.2.3",
          srcPrefix: 32,
          dstAddr: "10.0.0.0",
          dstPrefix: 8,
          srcPort: 1234,
          dstPort: 80,
        },
        {
          family: 6,
          proto: 132,
          srcAddr: "fd00::",
          srcPrefix: 64,
          dstAddr: "::",
          dstPrefix: 0,
          srcPort: 0,
          dstPort: 0,
        },
      ],
      capLen: 100,
      maxPackets: 5,
      maxBytes: 7,
      maxMs: 2500,
    });
  });

  test("validate - defaults: prefix hubble, whole packets, no stop condition", () => {
    const plan = planRecording(startOf({ include: [any4] }));
    expect(plan.prefix).toBe("hubble");
    expect(plan.capLen).toBe(65535);
    expect([plan.maxPackets, plan.maxBytes, plan.maxMs]).toEqual([0, 0, 0]);
  });

  test.each([
    ["filesink.file_prefix", { filesink: { filePrefix: "1abc" }, include: [any4] }],
    ["filesink.file_prefix", { filesink: { filePrefix: "../etc" }, include: [any4] }],
    [
      "filesink.file_prefix",
      { filesink: { filePrefix: "abcdefghijklmnopqrstu" }, include: [any4] },
    ],
    ["include", { include: [] }],
    ["include[0].source_cidr", { include: [{ ...any4, sourceCidr: "" }] }],
    ["include[0].source_cidr", { include: [{ ...any4, sourceCidr: "10.0.0.0/40" }] }],
    ["include[0].destination_cidr", { include: [{ ...any4, destinationCidr: "fe80::1%eth0" }] }],
    ["include[0].destination_cidr", { include: [{ ...any4, destinationCidr: "::/0" }] }],
    ["include[0].source_port", { include: [{ ...any4, sourcePort: 65536 }] }],
    ["include[0].protocol", { include: [{ ...any4, protocol: 1 as recorder.Protocol }] }],
  ] as const)("validate - %s is InvalidArgument naming it (%p)", (field, init) => {
    let caught: unknown;
    try {
      planRecording(startOf(init as never));
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConnectError);
    expect((caught as ConnectError).code).toBe(Code.InvalidArgument);
    expect((caught as ConnectError).rawMessage).toStartWith(`${field}: `);
  });

  test("validate - CIDR text", () => {
    expect(parseCidrText("10.0.0.1")).toEqual({ family: 4, addr: "10.0.0.1", prefix: 32 });
    expect(parseCidrText("::1/128")).toEqual({ family: 6, addr: "::1", prefix: 128 });
    expect(parseCidrText("10.0.0.0/-1")).toContain("bad prefix length");
  });
});
