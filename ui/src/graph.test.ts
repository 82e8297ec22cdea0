import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  EndpointSchema,
  type Flow,
  FlowSchema,
  Verdict,
} from "@periscope/proto/src/gen/flow/flow_pb.ts";
import { edgeVerdict, endpointNode, GraphModel, percentiles } from "./graph.ts";

interface Init {
  src?: [string, string] | "world" | "host" | string;
  dst?: [string, string] | "world" | "host" | string;
  sport?: number;
  dport?: number;
  proto?: "TCP" | "UDP" | "ICMPv4";
  verdict?: Verdict;
  reply?: boolean;
  reason?: string;
  http?: number;
  dns?: number;
  t?: number;
}

function ep(x: Init["src"]) {
  if (Array.isArray(x)) return create(EndpointSchema, { namespace: x[0], podName: x[1] });
  if (x === "world") return create(EndpointSchema, { identity: 2, labels: ["reserved:world"] });
  if (x === "host") return create(EndpointSchema, { identity: 1, labels: ["reserved:host"] });
  return create(EndpointSchema, {});
}

function flow(i: Init): Flow {
  const proto = i.proto ?? "TCP";
  return create(FlowSchema, {
    time: timestampFromMs(i.t ?? 1_000_000),
    verdict: i.verdict ?? Verdict.FORWARDED,
    IP: {
      source: typeof i.src === "string" && !["world", "host"].includes(i.src) ? i.src : "10.0.0.1",
      destination:
        typeof i.dst === "string" && !["world", "host"].includes(i.dst) ? i.dst : "10.0.0.2",
    },
    source: ep(i.src ?? ["demo", "client"]),
    destination: ep(i.dst ?? ["demo", "server"]),
    l4: {
      protocol:
        proto === "ICMPv4"
          ? { case: "ICMPv4", value: { type: 8, code: 0 } }
          : {
              case: proto,
              value: { sourcePort: i.sport ?? 40000, destinationPort: i.dport ?? 8080 },
            },
    },
    ...(i.reply !== undefined ? { isReply: i.reply } : {}),
    ...(i.reason ? { extDropReasonDesc: i.reason, dropReason: 133 } : {}),
    ...(i.http !== undefined
      ? {
          l7: {
            type: 2,
            latencyNs: BigInt(Math.round(i.http * 1e6)),
            record: { case: "http", value: { code: 200, method: "GET" } },
          },
        }
      : {}),
    ...(i.dns !== undefined
      ? {
          l7: {
            type: 2,
            latencyNs: BigInt(Math.round(i.dns * 1e6)),
            record: { case: "dns", value: { query: "x." } },
          },
        }
      : {}),
  });
}

describe("graph model", () => {
  test("graph - pods become ns/pod nodes, the connection one edge src->dst:proto/port", () => {
    const g = new GraphModel();
    g.add(flow({}));
    g.add(flow({ sport: 40001 }));
    expect([...g.nodes.keys()].sort()).toEqual(["demo/client", "demo/server"]);
    expect([...g.edges.keys()]).toEqual(["demo/client->demo/server:tcp/8080"]);
    const e = g.edges.get("demo/client->demo/server:tcp/8080");
    expect(e?.flows).toBe(2);
    expect(e?.verdicts.FORWARDED).toBe(2);
    expect(g.nodes.get("demo/client")?.namespace).toBe("demo");
  });

  test("graph - a reply is counted on its request's edge (server port, client first)", () => {
    const g = new GraphModel();
    g.add(flow({}));
    g.add(
      flow({
        src: ["demo", "server"],
        dst: ["demo", "client"],
        sport: 8080,
        dport: 40000,
        reply: true,
      }),
    );
    expect([...g.edges.keys()]).toEqual(["demo/client->demo/server:tcp/8080"]);
    expect(g.edges.get("demo/client->demo/server:tcp/8080")?.flows).toBe(2);
  });

  test("graph - world and host as Hubble names them; bare addresses as their IP; other protocols", () => {
    const g = new GraphModel();
    g.add(flow({ dst: "world", dport: 443 }));
    g.add(flow({ src: "host", dport: 9090 }));
    g.add(flow({ src: "192.168.1.5", dst: "192.168.1.6", proto: "UDP", dport: 53 }));
    g.add(flow({ proto: "ICMPv4" }));
    expect([...g.edges.keys()].sort()).toEqual([
      "192.168.1.5->192.168.1.6:udp/53",
      "demo/client->demo/server:icmp/0",
      "demo/client->world:tcp/443",
      "host->demo/server:tcp/9090",
    ]);
    expect(g.nodes.get("world")?.kind).toBe("world");
    expect(g.nodes.get("host")?.kind).toBe("host");
    expect(g.nodes.get("192.168.1.5")?.kind).toBe("ip");
  });

  test("graph - containers and processes are nodes when that is all that is known", () => {
    const c = endpointNode(
      create(EndpointSchema, { workloads: [{ kind: "container", name: "redis" }] }),
      "172.17.0.2",
    );
    expect(c).toEqual({
      id: "container:redis",
      label: "container:redis",
      namespace: "",
      kind: "container",
    });
    const p = endpointNode(create(EndpointSchema, { labels: ["process:curl"] }), "10.0.0.9");
    expect(p.id).toBe("process:curl");
    expect(p.kind).toBe("process");
    const pod = endpointNode(
      create(EndpointSchema, { namespace: "a", podName: "b", labels: ["process:curl"] }),
      "",
    );
    expect(pod.id).toBe("a/b");
  });

  test("graph - drops turn the edge DROPPED and count their reasons; audit is its own color", () => {
    const g = new GraphModel();
    g.add(flow({}));
    const e = g.add(flow({ verdict: Verdict.DROPPED, reason: "POLICY_DENIED" }));
    g.add(flow({ verdict: Verdict.DROPPED, reason: "POLICY_DENIED" }));
    g.add(flow({ verdict: Verdict.DROPPED, reason: "CT_NO_MAP_FOUND" }));
    expect(edgeVerdict(e)).toBe("DROPPED");
    expect(e.verdicts).toEqual({ FORWARDED: 1, DROPPED: 3, AUDIT: 0 });
    expect([...e.dropReasons]).toEqual([
      ["POLICY_DENIED", 2],
      ["CT_NO_MAP_FOUND", 1],
    ]);
    const a = g.add(flow({ dport: 9, verdict: Verdict.AUDIT }));
    expect(edgeVerdict(a)).toBe("AUDIT");
    const f = g.add(flow({ dport: 10 }));
    expect(edgeVerdict(f)).toBe("FORWARDED");
  });

  test("graph - HTTP and DNS latencies give percentiles per edge", () => {
    const g = new GraphModel();
    let e = g.add(flow({ http: 1 }));
    for (let ms = 2; ms <= 100; ms++) e = g.add(flow({ http: ms }));
    g.add(flow({ dns: 3, proto: "UDP", dport: 53 }));
    const p = percentiles(e.http);
    expect(p).toEqual({ count: 100, p50: 50, p90: 90, p99: 99 });
    expect(percentiles(e.dns)).toBeUndefined();
    const d = g.edges.get("demo/client->demo/server:udp/53");
    expect(percentiles(d?.dns ?? [])?.p50).toBe(3);
  });

  test("graph - latency samples are bounded to the newest 256", () => {
    const g = new GraphModel();
    let e = g.add(flow({ http: 1000 }));
    for (let i = 0; i < 300; i++) e = g.add(flow({ http: 1 }));
    expect(e.http.length).toBe(256);
    expect(percentiles(e.http)?.p99).toBe(1);
  });

  test("graph - idle edges are evicted, then nodes without edges; busy ones stay", () => {
    const g = new GraphModel({ idleMs: 60_000 });
    g.add(flow({ t: 0 }));
    g.add(flow({ t: 0, dst: ["demo", "db"], dport: 5432 }));
    g.add(flow({ t: 50_000 }));
    expect(g.evictIdle(30_000)).toBe(0);
    expect(g.evictIdle(70_000)).toBe(1);
    expect([...g.edges.keys()]).toEqual(["demo/client->demo/server:tcp/8080"]);
    expect(g.nodes.has("demo/db")).toBe(false);
    expect(g.nodes.has("demo/client")).toBe(true);
    expect(g.evictIdle(200_000)).toBe(1);
    expect(g.nodes.size).toBe(0);
  });

  test("graph - layout places every node; placed nodes keep their position as flows arrive", () => {
    const g = new GraphModel();
    g.add(flow({}));
    g.add(flow({ dst: ["demo", "db"], dport: 5432 }));
    g.layout();
    expect(g.needsLayout()).toBe(false);
    const before = new Map([...g.nodes].map(([id, n]) => [id, [n.x, n.y]]));
    for (const [, [x, y]] of before) {
      expect(Number.isFinite(x)).toBe(true);
      expect(Number.isFinite(y)).toBe(true);
    }
    // New flows on known edges, then new nodes in a new namespace and world.
    for (let i = 0; i < 50; i++) g.add(flow({ sport: 40000 + i }));
    g.add(flow({ src: ["shop", "web"], dst: ["demo", "server"] }));
    g.add(flow({ src: ["shop", "web"], dst: "world", dport: 443 }));
    expect(g.needsLayout()).toBe(true);
    g.layout();
    for (const [id, [x, y]] of before) {
      expect([g.nodes.get(id)?.x, g.nodes.get(id)?.y]).toEqual([x, y]);
    }
    // No two nodes overlap.
    const all = [...g.nodes.values()];
    for (const a of all) {
      for (const b of all) {
        if (a === b) continue;
        const apart = Math.abs(a.x - b.x) >= 150 || Math.abs(a.y - b.y) >= 40;
        expect(apart).toBe(true);
      }
    }
  });

  test("graph - the same flows in any order give the same layout", () => {
    const flows = [
      flow({}),
      flow({ dst: ["demo", "db"], dport: 5432 }),
      flow({ src: ["shop", "web"], dst: "world", dport: 443 }),
    ];
    const a = new GraphModel();
    const b = new GraphModel();
    for (const f of flows) a.add(f);
    for (const f of [...flows].reverse()) b.add(f);
    a.layout();
    b.layout();
    for (const [id, n] of a.nodes)
      expect([b.nodes.get(id)?.x, b.nodes.get(id)?.y]).toEqual([n.x, n.y]);
  });
});
