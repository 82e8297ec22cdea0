import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { type Flow, FlowSchema } from "@periscope/proto";
import { labelIdentity } from "./identity.ts";
import { ReplyTracker } from "./replies.ts";

type L4 =
  | { tcp: [number, number, { SYN?: boolean; ACK?: boolean; FIN?: boolean }] }
  | { udp: [number, number] }
  | { icmp4: number }
  | { icmp6: number };

function flow(src: string, dst: string, l4: L4): Flow {
  const protocol =
    "tcp" in l4
      ? {
          case: "TCP" as const,
          value: { sourcePort: l4.tcp[0], destinationPort: l4.tcp[1], flags: l4.tcp[2] },
        }
      : "udp" in l4
        ? { case: "UDP" as const, value: { sourcePort: l4.udp[0], destinationPort: l4.udp[1] } }
        : "icmp4" in l4
          ? { case: "ICMPv4" as const, value: { type: l4.icmp4, code: 0 } }
          : { case: "ICMPv6" as const, value: { type: l4.icmp6, code: 0 } };
  return create(FlowSchema, { IP: { source: src, destination: dst }, l4: { protocol } });
}

const A = "10.0.0.1";
const B = "10.0.0.2";

describe("reply tracker", () => {
  test.each([
    [
      "tcp handshake and data",
      [
        flow(A, B, { tcp: [40000, 80, { SYN: true }] }),
        flow(B, A, { tcp: [80, 40000, { SYN: true, ACK: true }] }),
        flow(A, B, { tcp: [40000, 80, { ACK: true }] }),
        flow(B, A, { tcp: [80, 40000, { ACK: true }] }),
      ],
      [false, true, false, true],
    ],
    [
      "tcp whose start was not seen stays unknown",
      [flow(A, B, { tcp: [40001, 80, { ACK: true }] })],
      [undefined],
    ],
    [
      "the same packet seen at two observation points",
      [
        flow(A, B, { udp: [5000, 53] }),
        flow(A, B, { udp: [5000, 53] }),
        flow(B, A, { udp: [53, 5000] }),
      ],
      [false, false, true],
    ],
    [
      "icmp echo",
      [flow(A, B, { icmp4: 8 }), flow(B, A, { icmp4: 0 }), flow(B, A, { icmp4: 3 })],
      [false, true, undefined],
    ],
    ["icmpv6 echo", [flow(A, B, { icmp6: 128 }), flow(B, A, { icmp6: 129 })], [false, true]],
  ] as Array<[string, Flow[], Array<boolean | undefined>]>)("replies - %s", (_n, flows, want) => {
    const t = new ReplyTracker();
    expect(flows.map((f, i) => t.classify(f, i))).toEqual(want);
    expect(flows.map((f) => f.isReply)).toEqual(want);
  });

  test("replies - idle connections are forgotten and the table is bounded", () => {
    const t = new ReplyTracker({ maxEntries: 2, idleMs: 100 });
    t.classify(flow(A, B, { udp: [1, 53] }), 0);
    expect(t.classify(flow(B, A, { udp: [53, 1] }), 200)).toBe(false); // forgotten: B now opens
    t.classify(flow(A, B, { udp: [2, 53] }), 201);
    t.classify(flow(A, B, { udp: [3, 53] }), 202);
    expect(t.size).toBe(2);
  });
});

describe("label identity", () => {
  test("identity - stable, order-independent, in the cluster-local range", () => {
    const a = labelIdentity("demo", ["app=web", "tier=front"]);
    expect(labelIdentity("demo", ["tier=front", "app=web"])).toBe(a);
    expect(labelIdentity("other", ["app=web", "tier=front"])).not.toBe(a);
    expect(a).toBeGreaterThanOrEqual(256);
    expect(a).toBeLessThan(65536);
  });
});
