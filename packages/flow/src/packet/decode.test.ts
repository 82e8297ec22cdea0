import { describe, expect, test } from "bun:test";
import { ethernet, icmp, ipv4, ipv6, sctp, tcp, udp } from "@periscope/testing";
import { decodePacket } from "./decode.ts";
import { PacketDecodeError } from "./errors.ts";
import type { DecodedPacket } from "./types.ts";

const MAC_A = "0a:00:00:00:00:0a";
const MAC_B = "0b:00:00:00:00:0b";
const noFlags = {
  FIN: false,
  SYN: false,
  RST: false,
  PSH: false,
  ACK: false,
  URG: false,
  ECE: false,
  CWR: false,
  NS: false,
};

function v4(
  payload: Uint8Array,
  protocol: number,
  extra: Partial<Parameters<typeof ipv4>[0]> = {},
) {
  return ethernet(
    { src: MAC_A, dst: MAC_B, etherType: 0x0800 },
    ipv4({ src: "10.200.0.2", dst: "10.200.0.3", protocol, ...extra }, payload),
  );
}

function v6(payload: Uint8Array, nextHeader: number, extensions: { type: number }[] = []) {
  return ethernet(
    { src: MAC_A, dst: MAC_B, etherType: 0x86dd },
    ipv6({ src: "fd00:200::2", dst: "fd00:200::3", nextHeader, extensions }, payload),
  );
}

const ip4 = {
  version: 4,
  source: "10.200.0.2",
  destination: "10.200.0.3",
  fragmentOffset: 0,
  moreFragments: false,
  ttl: 64,
} as const;
const ip6 = { ...ip4, version: 6, source: "fd00:200::2", destination: "fd00:200::3" } as const;
const eth4 = { source: MAC_A, destination: MAC_B, etherType: 0x0800, vlanIds: [] };
const eth6 = { ...eth4, etherType: 0x86dd };

const cases: [string, Uint8Array, DecodedPacket][] = [
  [
    "ipv4 tcp syn",
    v4(tcp(34567, 80, ["SYN"]), 6),
    {
      ethernet: eth4,
      ip: { ...ip4, protocol: 6 },
      l4: {
        kind: "tcp",
        sourcePort: 34567,
        destinationPort: 80,
        flags: { ...noFlags, SYN: true },
      },
      truncated: false,
    },
  ],
  [
    "ipv4 tcp all flags",
    v4(tcp(1, 2, ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"]), 6),
    {
      ethernet: eth4,
      ip: { ...ip4, protocol: 6 },
      l4: {
        kind: "tcp",
        sourcePort: 1,
        destinationPort: 2,
        flags: Object.fromEntries(Object.keys(noFlags).map((k) => [k, true])) as typeof noFlags,
      },
      truncated: false,
    },
  ],
  [
    "ipv4 udp",
    v4(udp(5353, 53), 17),
    {
      ethernet: eth4,
      ip: { ...ip4, protocol: 17 },
      l4: { kind: "udp", sourcePort: 5353, destinationPort: 53 },
      truncated: false,
    },
  ],
  [
    "ipv4 with options and sctp",
    v4(sctp(3868, 3869), 132, { options: [0x94, 0x04, 0, 0] }),
    {
      ethernet: eth4,
      ip: { ...ip4, protocol: 132 },
      l4: { kind: "sctp", sourcePort: 3868, destinationPort: 3869 },
      truncated: false,
    },
  ],
  [
    "ipv4 icmp echo request",
    v4(icmp(8, 0), 1),
    {
      ethernet: eth4,
      ip: { ...ip4, protocol: 1 },
      l4: { kind: "icmpv4", type: 8, code: 0 },
      truncated: false,
    },
  ],
  [
    "ipv4 first fragment has l4",
    v4(udp(1000, 2000, new Uint8Array(16)), 17, { moreFragments: true }),
    {
      ethernet: eth4,
      ip: { ...ip4, protocol: 17, moreFragments: true },
      l4: { kind: "udp", sourcePort: 1000, destinationPort: 2000 },
      truncated: false,
    },
  ],
  [
    "ipv4 later fragment has no l4",
    v4(new Uint8Array(16), 17, { fragmentOffset: 1480 }),
    { ethernet: eth4, ip: { ...ip4, protocol: 17, fragmentOffset: 1480 }, truncated: false },
  ],
  [
    "ipv4 unknown protocol stops at l3",
    v4(new Uint8Array(8), 47),
    { ethernet: eth4, ip: { ...ip4, protocol: 47 }, truncated: false },
  ],
  [
    "ipv6 tcp syn-ack",
    v6(tcp(80, 34567, ["SYN", "ACK"]), 6),
    {
      ethernet: eth6,
      ip: { ...ip6, protocol: 6 },
      l4: {
        kind: "tcp",
        sourcePort: 80,
        destinationPort: 34567,
        flags: { ...noFlags, SYN: true, ACK: true },
      },
      truncated: false,
    },
  ],
  [
    "ipv6 hop-by-hop then udp",
    v6(udp(546, 547), 17, [{ type: 0 }]),
    {
      ethernet: eth6,
      ip: { ...ip6, protocol: 17 },
      l4: { kind: "udp", sourcePort: 546, destinationPort: 547 },
      truncated: false,
    },
  ],
  [
    "ipv6 routing, dest-opts and first fragment then tcp",
    v6(tcp(1, 2, ["ACK"]), 6, [{ type: 43 }, { type: 60 }, { type: 44 }]),
    {
      ethernet: eth6,
      ip: { ...ip6, protocol: 6 },
      l4: { kind: "tcp", sourcePort: 1, destinationPort: 2, flags: { ...noFlags, ACK: true } },
      truncated: false,
    },
  ],
  [
    "ipv6 icmpv6 echo request",
    v6(icmp(128, 0), 58),
    {
      ethernet: eth6,
      ip: { ...ip6, protocol: 58 },
      l4: { kind: "icmpv6", type: 128, code: 0 },
      truncated: false,
    },
  ],
  [
    "vlan tagged ipv4 udp",
    ethernet(
      { src: MAC_A, dst: MAC_B, etherType: 0x0800, vlans: [100, 4095] },
      ipv4({ src: "10.200.0.2", dst: "10.200.0.3", protocol: 17 }, udp(1, 2)),
    ),
    {
      ethernet: { ...eth4, vlanIds: [100, 4095] },
      ip: { ...ip4, protocol: 17 },
      l4: { kind: "udp", sourcePort: 1, destinationPort: 2 },
      truncated: false,
    },
  ],
  [
    "truncated inside tcp keeps l3",
    v4(tcp(1, 2, ["SYN"]), 6).subarray(0, 14 + 20 + 10),
    { ethernet: eth4, ip: { ...ip4, protocol: 6 }, truncated: true },
  ],
  [
    "truncated inside ipv4 keeps l2",
    v4(udp(1, 2), 17).subarray(0, 14 + 12),
    { ethernet: eth4, truncated: true },
  ],
  [
    "truncated inside ipv6 extension chain keeps l3",
    v6(udp(1, 2), 17, [{ type: 0 }]).subarray(0, 14 + 40 + 4),
    { ethernet: eth6, ip: { ...ip6, protocol: 0 }, truncated: true },
  ],
  [
    "ethernet padding is not read as l4",
    // IPv4 total length covers 4 bytes of TCP; the 30 bytes after it are padding.
    new Uint8Array([...v4(new Uint8Array([0, 1, 0, 2]), 6), ...new Uint8Array(30).fill(0x50)]),
    { ethernet: eth4, ip: { ...ip4, protocol: 6 }, truncated: true },
  ],
];

describe("packet", () => {
  test.each(cases)("packet - decodes %s", (_name, bytes, expected) => {
    expect(decodePacket(bytes)).toEqual(expected);
  });

  test("packet - decodes an ARP request", () => {
    const arp = new Uint8Array([
      0, 1, 8, 0, 6, 4, 0, 1, 0x0a, 0, 0, 0, 0, 0x0a, 10, 200, 0, 2, 0, 0, 0, 0, 0, 0, 10, 200, 0,
      3,
    ]);
    const packet = decodePacket(
      ethernet({ src: MAC_A, dst: "ff:ff:ff:ff:ff:ff", etherType: 0x0806 }, arp),
    );
    expect(packet.arp).toEqual({
      operation: 1,
      senderMac: MAC_A,
      senderIp: "10.200.0.2",
      targetMac: "00:00:00:00:00:00",
      targetIp: "10.200.0.3",
    });
  });

  test("packet - decodes a capture that starts at the IP header", () => {
    const packet = decodePacket(
      ipv4({ src: "1.2.3.4", dst: "5.6.7.8", protocol: 17 }, udp(1, 2)),
      "ip",
    );
    expect(packet.ethernet).toBeUndefined();
    expect(packet.ip?.source).toBe("1.2.3.4");
    expect(packet.l4).toEqual({ kind: "udp", sourcePort: 1, destinationPort: 2 });
  });

  const bad: [string, Uint8Array, string][] = [
    ["an empty capture", new Uint8Array(), "packet: no bytes captured"],
    [
      "a short ethernet header",
      new Uint8Array(10),
      "ethernet: header truncated: 10 bytes, need 14",
    ],
    [
      "an ipv4 header with version 5",
      (() => {
        const b = v4(udp(1, 2), 17);
        b[14] = 0x55;
        return b;
      })(),
      "ipv4: version 5, expected 4",
    ],
    [
      "an ipv4 header length below 20",
      (() => {
        const b = v4(udp(1, 2), 17);
        b[14] = 0x44;
        return b;
      })(),
      "ipv4: header length 16 < 20",
    ],
    [
      "an ipv4 total length below the header",
      v4(udp(1, 2), 17, { totalLength: 12 }),
      "ipv4: total length 12 < header length 20",
    ],
    [
      "a tcp data offset below 20",
      (() => {
        const b = v4(tcp(1, 2, ["SYN"]), 6);
        b[14 + 20 + 12] = 0x40;
        return b;
      })(),
      "tcp: data offset 16 < 20",
    ],
    [
      "an ipv6 ethertype carrying ipv4",
      ethernet(
        { etherType: 0x86dd },
        ipv4({ src: "1.1.1.1", dst: "2.2.2.2", protocol: 6 }, new Uint8Array(20)),
      ),
      "ipv6: version 4, expected 6",
    ],
  ];
  test.each(bad)("packet - rejects %s", (_name, bytes, message) => {
    let caught: unknown;
    try {
      decodePacket(bytes);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PacketDecodeError);
    expect((caught as Error).message).toBe(message);
    expect((caught as Error).name).toBe("PacketDecodeError");
  });
});
