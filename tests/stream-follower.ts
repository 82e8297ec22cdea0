/**
 * A plain @grpc/grpc-js GetFlows follower as its own process, so a test can SIGSTOP it.
 * Counts flows and lost events; answers `{ type: "counts" }` over IPC with
 * {@link FollowerCounts}. Run as `bun tests/stream-follower.ts <port>`.
 */
import type * as grpc from "@grpc/grpc-js";
import { grpcObserverClient } from "../services/observer/src/testing.ts";

/** What the follower saw so far. */
export interface FollowerCounts {
  readonly type: "counts";
  readonly flows: number;
  /** Events reported lost, by LostEventSource name. */
  readonly lost: Record<string, number>;
  /** The call's final status, once it ended. */
  readonly status?: { code: number; details: string } | undefined;
}

interface FlowsClient extends grpc.Client {
  GetFlows(req: object): grpc.ClientReadableStream<{
    response_types?: string;
    lost_events?: { source: string; num_events_lost: string };
  }>;
}

if (import.meta.main) {
  const port = Number(process.argv[2]);
  const client = grpcObserverClient<FlowsClient>(port);
  let flows = 0;
  const lost: Record<string, number> = {};
  let status: FollowerCounts["status"];
  const call = client.GetFlows({ follow: true });
  call.on("data", (r) => {
    if (r.response_types === "flow") flows++;
    else if (r.response_types === "lost_events" && r.lost_events) {
      const src = r.lost_events.source;
      lost[src] = (lost[src] ?? 0) + Number(r.lost_events.num_events_lost);
    }
  });
  call.on("error", () => undefined);
  call.on("status", (s: grpc.StatusObject) => {
    status = { code: s.code, details: s.details };
  });
  process.on("message", () => {
    const reply: FollowerCounts = { type: "counts", flows, lost, status };
    process.send?.(reply);
  });
  process.on("disconnect", () => process.exit(0));
}
