import { describe, expect, test } from "bun:test";
import {
  addrBytes,
  type DecodedTemplate,
  decodeIpfixMessage,
  fieldBytes,
  fieldUint,
  sampleNetflowRecord,
} from "../../test-helpers.ts";
import type { NetflowRecord } from "../record.ts";
import { IE, TEMPLATE_ID_V4, TEMPLATE_ID_V6 } from "./elements.ts";
import { IpfixEncoder } from "./encoder.ts";

const NOW = 1_760_000_100_500;

function decodeAll(msgs: Uint8Array[], known = new Map<number, DecodedTemplate>()) {
  return msgs.map((m) => decodeIpfixMessage(m, known));
}

describe("ipfix encoder", () => {
  test("ipfix encoder - header, template set and one IPv4 record byte for byte", () => {
    const enc = new IpfixEncoder({ observationDomainId: 42, now: () => NOW });
    const [msg, more] = enc.encode([sampleNetflowRecord()]);
    expect(more).toBeUndefined();
    if (msg === undefined) throw new Error("no message");
    // Header: version 10, length, export time in seconds, sequence 0, domain 42.
    expect([...msg.subarray(0, 4)]).toEqual([0, 10, msg.length >> 8, msg.length & 0xff]);
    const v = new DataView(msg.buffer, msg.byteOffset);
    expect(v.getUint32(4)).toBe(Math.floor(NOW / 1000));
    expect(v.getUint32(8)).toBe(0);
    expect(v.getUint32(12)).toBe(42);
    // First set: templates (id 2) for 256 and 257 with 20 fields each.
    expect(v.getUint16(16)).toBe(2);
    expect(v.getUint16(18)).toBe(4 + 2 * (4 + 20 * 4));
    expect(v.getUint16(20)).toBe(TEMPLATE_ID_V4);
    expect(v.getUint16(22)).toBe(20);
    // First field of the IPv4 template: octetDeltaCount, 8 bytes.
    expect([...msg.subarray(24, 28)]).toEqual([0, 1, 0, 8]);
    const data = 16 + 172;
    expect(v.getUint16(data)).toBe(TEMPLATE_ID_V4);
    expect(v.getUint16(data + 2)).toBe(4 + 88);
    expect(msg.length).toBe(data + 4 + 88);
    // The record itself, in template order.
    const rec = msg.subarray(data + 4);
    const expected = [
      ...[0, 0, 0, 0, 0, 1, 0xe2, 0x40], // bytes 123456
      ...[0, 0, 0, 0, 0, 0, 0, 89], // packets
      ...[0, 0, 0x01, 0x99, 0xc8, 0x2c, 0xc0, 0x00], // first seen 1760000000000
      ...[0, 0, 0x01, 0x99, 0xc8, 0x2c, 0xd0, 0xe1], // last seen 1760000004321
      ...[10, 1, 2, 3, 10, 4, 5, 6],
      ...[0x9c, 0x40, 0x14, 0x51], // ports 40000, 5201
      6, // TCP
      46 << 2, // DSCP EF in the TOS byte
      ...[0, 0x1b], // TCP flags
      ...[0, 0], // ICMP type/code
      ...[0, 0, 0, 7, 0, 0, 0, 0], // ingress 7, egress 0
      0, // flowDirection ingress
      ...[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2],
      1, // idle timeout
      ...new Array(16).fill(0), // no drops
    ];
    expect([...rec]).toEqual(expected);
  });

  test("ipfix encoder - IPv6 ICMP record decodes through its template", () => {
    const enc = new IpfixEncoder({ now: () => NOW });
    const r = sampleNetflowRecord({
      family: 6,
      srcAddr: addrBytes("fd00::1"),
      dstAddr: addrBytes("fd00:0:0:1::2"),
      srcPort: 0,
      dstPort: 0,
      proto: 58,
      icmpType: 128,
      icmpCode: 0,
      tcpFlags: 0,
      direction: "egress",
      endReason: "shutdown",
      drops: { packets: 3n, bytes: 252n, lastReason: 2 },
    });
    const [m] = decodeAll(enc.encode([r]));
    const rec = m?.records[0];
    if (rec === undefined) throw new Error("no record");
    expect(rec.templateId).toBe(TEMPLATE_ID_V6);
    expect([...fieldBytes(rec, IE.sourceIPv6Address)]).toEqual([...addrBytes("fd00::1")]);
    expect([...fieldBytes(rec, IE.destinationIPv6Address)]).toEqual([
      ...addrBytes("fd00:0:0:1::2"),
    ]);
    expect(fieldUint(rec, IE.icmpTypeCodeIPv6)).toBe(128n << 8n);
    expect(fieldUint(rec, IE.protocolIdentifier)).toBe(58n);
    expect(fieldUint(rec, IE.ingressInterface)).toBe(0n);
    expect(fieldUint(rec, IE.egressInterface)).toBe(7n);
    expect(fieldUint(rec, IE.flowDirection)).toBe(1n);
    expect(fieldUint(rec, IE.flowEndReason)).toBe(4n);
    expect(fieldUint(rec, IE.droppedPacketDeltaCount)).toBe(3n);
    expect(fieldUint(rec, IE.droppedOctetDeltaCount)).toBe(252n);
    expect(fieldUint(rec, IE.flowStartMilliseconds)).toBe(BigInt(r.firstSeenMs));
    expect(fieldUint(rec, IE.flowEndMilliseconds)).toBe(BigInt(r.lastSeenMs));
  });

  test("ipfix encoder - messages stay within the size limit, sequence counts data records", () => {
    const enc = new IpfixEncoder({ now: () => NOW, maxMessageBytes: 1472 });
    const records: NetflowRecord[] = [];
    for (let i = 0; i < 100; i++) {
      const v6 = i % 3 === 0;
      records.push(
        sampleNetflowRecord({
          family: v6 ? 6 : 4,
          srcAddr: v6 ? addrBytes(`fd00::${i + 1}`) : addrBytes(`10.0.0.${i + 1}`),
          dstAddr: v6 ? addrBytes("fd00::ffff") : addrBytes("10.9.9.9"),
          srcPort: 1000 + i,
          bytes: BigInt(i * 1000),
          packets: BigInt(i),
        }),
      );
    }
    const msgs = enc.encode(records);
    const known = new Map<number, DecodedTemplate>();
    const decoded = decodeAll(msgs, known);
    let seq = 0;
    const ports: number[] = [];
    for (const [i, m] of decoded.entries()) {
      expect(msgs[i]?.length).toBeLessThanOrEqual(1472);
      expect(m.header.sequence).toBe(seq);
      seq += m.records.length;
      for (const r of m.records) ports.push(Number(fieldUint(r, IE.sourceTransportPort)));
    }
    expect(ports).toEqual(records.map((r) => r.srcPort));
    expect(enc.sequence).toBe(100);
    // Only the first message carries templates; each is full but for its last.
    expect(decoded.map((m) => m.templates.length)).toEqual([
      2,
      ...new Array(msgs.length - 1).fill(0),
    ]);
    for (const m of msgs.slice(1, -1)) expect(m.length).toBeGreaterThan(1472 - 112 - 4);
    // A second call continues the sequence.
    const [next] = decodeAll(enc.encode([sampleNetflowRecord()]), known);
    expect(next?.header.sequence).toBe(100);
  });

  test("ipfix encoder - templates are re-sent after the interval and on request", () => {
    let now = NOW;
    const enc = new IpfixEncoder({ now: () => now, templateIntervalMs: 10_000 });
    const count = () =>
      decodeIpfixMessage(enc.encode([sampleNetflowRecord()])[0] ?? new Uint8Array()).templates
        .length;
    expect(count()).toBe(2);
    now += 9_999;
    expect(
      new DataView((enc.encode([sampleNetflowRecord()])[0] as Uint8Array).buffer).getUint16(16),
    ).toBe(TEMPLATE_ID_V4);
    now += 1;
    expect(count()).toBe(2);
    enc.resendTemplates();
    expect(count()).toBe(2);
    const only = decodeIpfixMessage(enc.templateMessage());
    expect(only.records).toEqual([]);
    expect(only.templates.map((t) => t.id)).toEqual([TEMPLATE_ID_V4, TEMPLATE_ID_V6]);
    expect(only.templates[1]?.fields.map((f) => f.id)).toContain(IE.sourceIPv6Address);
  });

  test("ipfix encoder - a size limit too small for one record is refused", () => {
    expect(() => new IpfixEncoder({ maxMessageBytes: 200 })).toThrow(/maxMessageBytes/);
  });
});
