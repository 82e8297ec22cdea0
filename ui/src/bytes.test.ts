import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Flow, FlowSchema } from "@periscope/proto/src/gen/flow/flow_pb.ts";
import {
  ByteTable,
  EDGE_ADDR_PAIRS,
  type FlowStatLike,
  formatCounts,
  noteEdgeAddrs,
  protocolNumber,
} from "./bytes.ts";
import { GraphModel } from "./graph.ts";

const DST = 1;
const SRC = 2;

/** A flow between two pods of "demo" (client 10.0.0.1/pod a, server 10.0.0.2/pod b). */
function flow(o: {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  reply?: boolean;
  proto?: "TCP" | "UDP" | "ICMPv4" | "ICMPv6";
  pods?: [string, string];
}): Flow {
  const [a, b] = o.pods ?? ["a", "b"];
  const proto = o.proto ?? "TCP";
  return create(FlowSchema, {
    time: timestampFromMs(1_000_000),
    verdict: 1,
    IP: { source: o.src, destination: o.dst },
    source: { namespace: "demo", podName: a },
    destination: { namespace: "demo", podName: b },
    l4: {
      protocol:
        proto === "ICMPv4" || proto === "ICMPv6"
          ? { case: proto, value: { type: 8, code: 0 } }
          : { case: proto, value: { sourcePort: o.sport, destinationPort: o.dport } },
    },
    isReply: o.reply ?? false,
  });
}

function stat(
  src: string,
  dst: string,
  protocol: number,
  side: number,
  port: number,
  bytes: bigint,
  packets: bigint,
): FlowStatLike {
  return { sourceIp: src, destinationIp: dst, protocol, portSide: side, port, bytes, packets };
}

describe("bytes per edge", () => {
  test("an edge gets client→server under the destination port and server→client under the source port", () => {
    const g = new GraphModel();
    g.add(flow({ src: "10.0.0.1", dst: "10.0.0.2", sport: 41000, dport: 8080 }));
    // the reply folds into the request's edge and notes the same pair
    const e = g.add(
      flow({
        src: "10.0.0.2",
        dst: "10.0.0.1",
        sport: 8080,
        dport: 41000,
        reply: true,
        pods: ["b", "a"],
      }),
    );
    expect(e.id).toBe("demo/a->demo/b:tcp/8080");
    expect(e.addrs).toEqual(["10.0.0.1>10.0.0.2"]);
    const table = new ByteTable([
      stat("10.0.0.1", "10.0.0.2", 6, DST, 8080, 2260n, 14n),
      stat("10.0.0.2", "10.0.0.1", 6, SRC, 8080, 90_052n, 61n),
      // the same records keyed by the client's port: not this edge's
      stat("10.0.0.1", "10.0.0.2", 6, SRC, 41000, 2200n, 13n),
      stat("10.0.0.2", "10.0.0.1", 6, DST, 41000, 90_000n, 60n),
      // other port, other protocol, other direction of the wrong side
      stat("10.0.0.1", "10.0.0.2", 6, DST, 9090, 5n, 1n),
      stat("10.0.0.1", "10.0.0.2", 17, DST, 8080, 7n, 1n),
      stat("10.0.0.2", "10.0.0.1", 6, DST, 8080, 11n, 1n),
    ]);
    expect(table.forEdge(e)).toEqual({
      forward: { bytes: 2260n, packets: 14n },
      reverse: { bytes: 90_052n, packets: 61n },
    });
  });

  test("a pod edge seen with several addresses sums every pair; no record is unknown", () => {
    const g = new GraphModel();
    g.add(flow({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 53, proto: "UDP" }));
    const e = g.add(flow({ src: "10.0.0.3", dst: "10.0.0.2", sport: 2, dport: 53, proto: "UDP" }));
    expect(e.addrs).toEqual(["10.0.0.1>10.0.0.2", "10.0.0.3>10.0.0.2"]);
    const t = new ByteTable([
      stat("10.0.0.1", "10.0.0.2", 17, DST, 53, 100n, 1n),
      stat("10.0.0.3", "10.0.0.2", 17, DST, 53, 50n, 2n),
    ]);
    expect(t.forEdge(e)).toEqual({ forward: { bytes: 150n, packets: 3n }, reverse: undefined });
    expect(new ByteTable([]).forEdge(e)).toEqual({ forward: undefined, reverse: undefined });
    expect(formatCounts(undefined)).toBe("unknown");
  });

  test("ICMP by address family; protocols without a number join nothing", () => {
    expect(protocolNumber("icmp", "10.0.0.1")).toBe(1);
    expect(protocolNumber("icmp", "fd00::1")).toBe(58);
    expect(protocolNumber("sctp", "10.0.0.1")).toBe(132);
    expect(protocolNumber("other", "10.0.0.1")).toBeUndefined();
    const g = new GraphModel();
    const e = g.add(flow({ src: "fd00::1", dst: "fd00::2", sport: 0, dport: 0, proto: "ICMPv6" }));
    const t = new ByteTable([
      stat("fd00::1", "fd00::2", 58, DST, 0, 104n, 1n),
      stat("fd00::2", "fd00::1", 58, SRC, 0, 104n, 1n),
      stat("fd00::1", "fd00::2", 1, DST, 0, 999n, 9n),
    ]);
    expect(t.forEdge(e)).toEqual({
      forward: { bytes: 104n, packets: 1n },
      reverse: { bytes: 104n, packets: 1n },
    });
    expect(t.forEdge({ protocol: "other", port: 0, addrs: ["fd00::1>fd00::2"] })).toEqual({
      forward: undefined,
      reverse: undefined,
    });
  });

  test("address pairs per edge are bounded, newest kept, flows without addresses add none", () => {
    const e: { addrs?: string[] } = {};
    noteEdgeAddrs(e, "", "10.0.0.2", false);
    expect(e.addrs).toBeUndefined();
    for (let i = 0; i < EDGE_ADDR_PAIRS + 4; i++)
      noteEdgeAddrs(e, `10.1.0.${i}`, "10.0.0.2", false);
    expect(e.addrs).toHaveLength(EDGE_ADDR_PAIRS);
    expect(e.addrs?.[0]).toBe("10.1.0.4>10.0.0.2");
    noteEdgeAddrs(e, "10.1.0.4", "10.0.0.2", false); // seen again: moves to the newest
    expect(e.addrs?.at(-1)).toBe("10.1.0.4>10.0.0.2");
    expect(e.addrs).toHaveLength(EDGE_ADDR_PAIRS);
  });

  test("counts are shown with units, exact bytes and packets", () => {
    expect(formatCounts({ bytes: 512n, packets: 3n })).toBe("512 B, 3 packets");
    expect(formatCounts({ bytes: 90_052n, packets: 61n })).toBe("87.9 KiB (90,052 B), 61 packets");
  });
});
