import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runOk } from "@periscope/testing";
import { LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapFile } from "./pcap.ts";

const dir = mkdtempSync(join(tmpdir(), "periscope-pcap-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An Ethernet + IPv4 + UDP frame with `payload` bytes of payload. */
function frame(payload: number): Uint8Array {
  const f = new Uint8Array(42 + payload);
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
  f.set([0x45, 0, 0, 28 + payload, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 9, 0, 1, 10, 9, 0, 2], 14);
  f.set([0x04, 0xd2, 0x16, 0x2e, 0, 8 + payload, 0, 0], 34);
  return f;
}

test("pcap - nanosecond header, records with original lengths, tshark agrees", async () => {
  const path = join(dir, "a.pcap");
  const f = await PcapFile.create(path, LINKTYPE_ETHERNET);
  const ts = 1_700_000_000_123_456_789n;
  await f.write([
    { tsNs: ts, origLen: 142, data: frame(100).subarray(0, 60) },
    { tsNs: ts + 1n, origLen: 52, data: frame(10) },
  ]);
  await f.close();
  const b = new Uint8Array(readFileSync(path));
  const dv = new DataView(b.buffer);
  expect(dv.getUint32(0, true)).toBe(0xa1b23c4d);
  expect(dv.getUint32(20, true)).toBe(1);
  expect([dv.getUint32(24, true), dv.getUint32(28, true)]).toEqual([1_700_000_000, 123_456_789]);
  expect([dv.getUint32(32, true), dv.getUint32(36, true)]).toEqual([60, 142]);
  const out = await runOk([
    ...["tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.cap_len"],
    ...["-e", "frame.len", "-e", "udp.dstport"],
  ]);
  expect(out.trim().split("\n")).toEqual([
    "1700000000.123456789\t60\t142\t5678",
    "1700000000.123456790\t52\t52\t5678",
  ]);
  // Never overwrites.
  await expect(PcapFile.create(path, LINKTYPE_RAW)).rejects.toThrow(/EEXIST/);
});

test("pcap - RAW link type for packets without an L2 header", async () => {
  const path = join(dir, "raw.pcap");
  const f = await PcapFile.create(path, LINKTYPE_RAW);
  await f.write([{ tsNs: 1n, origLen: 38, data: frame(10).subarray(14) }]);
  await f.close();
  const out = await runOk([
    "tshark",
    "-r",
    path,
    "-T",
    "fields",
    "-e",
    "ip.dst",
    "-e",
    "udp.srcport",
  ]);
  expect(out.trim()).toBe("10.9.0.2\t1234");
});
