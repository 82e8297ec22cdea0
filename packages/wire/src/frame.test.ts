import { describe, expect, test } from "bun:test";
import { createRawFrame, decodeRawFrame, encodeRawFrame, MalformedFrameError } from "./frame.ts";

const good = {
  nodeName: "node-1",
  seq: 7n,
  bootId: "boot",
  partition: 3,
  bootToRealtimeNs: 1_700_000_000_000_000_000n,
  kernelLost: 2n,
  collectorLost: 1n,
  records: [Uint8Array.from([1, 2, 3]), new Uint8Array(0), new Uint8Array(48).fill(9)],
  sealedUnixNs: 1_700_000_000_123_456_789n,
};

describe("raw frame", () => {
  test("raw frame - round-trips every field", () => {
    const decoded = decodeRawFrame(encodeRawFrame(good));
    expect(decoded).toMatchObject(good);
    expect(decodeRawFrame(encodeRawFrame(createRawFrame(good)))).toMatchObject(good);
  });

  test.each([
    {
      name: "garbage bytes",
      bytes: Uint8Array.from([0xff, 0xff, 0xff]),
      msg: /not a valid protobuf/,
    },
    { name: "no node name", bytes: encodeRawFrame({ ...good, nodeName: "" }), msg: /node_name/ },
    { name: "no boot id", bytes: encodeRawFrame({ ...good, bootId: "" }), msg: /boot_id/ },
    { name: "seq 0", bytes: encodeRawFrame({ ...good, seq: 0n }), msg: /seq/ },
  ])("raw frame - rejects $name", ({ bytes, msg }) => {
    expect(() => decodeRawFrame(bytes)).toThrow(MalformedFrameError);
    expect(() => decodeRawFrame(bytes)).toThrow(msg);
  });
});
