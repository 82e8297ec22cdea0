/**
 * Child process of the pipeline bench: a GetFlows follow client (gRPC over h2c, as the
 * hubble CLI connects) that counts flows per node, lost events per node and source,
 * and each flow's end-to-end latency (arrival wall time − flow.time, which the
 * enricher derives from the kernel's boot timestamp). Talks to the parent over IPC:
 * see {@link FollowRequest} / {@link FollowReply}. Run as `bun bench/follow-client.ts <url>`.
 */

import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { LostEventSource, Observer } from "@periscope/proto";
import { LatencySamples, type LatencySummary } from "./report.ts";

/** What the parent asks: counts so far, or one node's latency percentiles. */
export type FollowQuery =
  | { readonly type: "snapshot" }
  | { readonly type: "latency"; readonly node: string };

/** Parent → child: a query and the id its reply carries. */
export type FollowRequest = FollowQuery & { readonly id: number };

/** Counts of one node's events seen on the stream so far. */
export interface NodeCounts {
  flows: number;
  /** Events reported lost, by LostEventSource name. */
  lost: Record<string, number>;
}

/** Child → parent. */
export type FollowReply =
  | { readonly type: "snapshot"; readonly id: number; readonly nodes: Record<string, NodeCounts> }
  | ({ readonly type: "latency"; readonly id: number } & LatencySummary)
  | { readonly type: "error"; readonly message: string };

function send(reply: FollowReply): void {
  process.send?.(reply);
}

async function follow(url: string): Promise<void> {
  const nodes: Record<string, NodeCounts> = {};
  const latencies = new Map<string, LatencySamples>();
  const counts = (node: string): NodeCounts => {
    let c = nodes[node];
    if (c === undefined) {
      c = { flows: 0, lost: {} };
      nodes[node] = c;
    }
    return c;
  };
  process.on("message", (msg: FollowRequest) => {
    if (msg.type === "snapshot") send({ type: "snapshot", id: msg.id, nodes });
    else {
      const s = latencies.get(msg.node)?.summary();
      const none = {
        count: 0,
        min: Number.NaN,
        p50: Number.NaN,
        p90: Number.NaN,
        p99: Number.NaN,
        max: Number.NaN,
      };
      send({ type: "latency", id: msg.id, ...(s ?? none) });
    }
  });
  process.on("disconnect", () => process.exit(0));

  const client = createClient(Observer, createGrpcTransport({ baseUrl: url }));
  const origin = performance.timeOrigin;
  for await (const resp of client.getFlows({ follow: true })) {
    const arrivedMs = origin + performance.now();
    const ev = resp.responseTypes;
    if (ev.case === "flow") {
      const node = ev.value.nodeName;
      counts(node).flows++;
      const t = ev.value.time;
      if (t !== undefined) {
        let s = latencies.get(node);
        if (s === undefined) {
          s = new LatencySamples();
          latencies.set(node, s);
        }
        s.push(arrivedMs - (Number(t.seconds) * 1000 + t.nanos / 1e6));
      }
    } else if (ev.case === "lostEvents") {
      const lost = counts(resp.nodeName).lost;
      const source = LostEventSource[ev.value.source] ?? String(ev.value.source);
      lost[source] = (lost[source] ?? 0) + Number(ev.value.numEventsLost);
    }
  }
}

if (import.meta.main) {
  const url = process.argv[2];
  if (url === undefined) {
    process.stderr.write("usage: bun bench/follow-client.ts <observer url>\n");
    process.exit(2);
  }
  follow(url).then(
    () => process.exit(0),
    (err: unknown) => {
      send({ type: "error", message: err instanceof Error ? err.message : String(err) });
      process.stderr.write(`follow-client: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
