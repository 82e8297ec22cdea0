/**
 * recorder.Recorder/Record: the first request must be `start` (validated, InvalidArgument
 * naming the field); then `running` responses with the totals at least once a second until
 * the client sends `stop`, a stop condition is hit or the client goes away; then one
 * `stopped` response per file written (its node's statistics and the file's path).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { recorder } from "@periscope/proto";
import type { Logger } from "@periscope/telemetry";
import type { RecordedFile, RecordingSession, RecordingStats, StopReason } from "./session.ts";
import { planRecording, type RecordingPlan } from "./validate.ts";

/** Starts a session for a validated plan (RecordingSession.start with the recorder's deps). */
export type SessionStarter = (
  plan: RecordingPlan,
  onStop: (reason: StopReason) => void,
) => Promise<RecordingSession>;

/** What the service needs. */
export interface RecorderServiceDeps {
  readonly nodeName: string;
  readonly startSession: SessionStarter;
  readonly log: Logger;
  /** Interval of `running` responses, ms (default 1000). */
  readonly progressMs?: number;
  /** Aborted when the recorder shuts down: running recordings stop and answer `stopped`. */
  readonly shutdown?: AbortSignal;
}

function statsMessage(s: RecordingStats): recorder.RecordingStatistics {
  return create(recorder.RecordingStatisticsSchema, {
    bytesCaptured: BigInt(s.bytesCaptured),
    packetsCaptured: BigInt(s.packetsCaptured),
    packetsLost: BigInt(s.packetsLost),
    bytesLost: BigInt(s.bytesLost),
  });
}

/** The `stopped` responses of a finished recording, one per file. */
export function stoppedResponses(files: readonly RecordedFile[]): recorder.RecordResponse[] {
  return files.map((f) =>
    create(recorder.RecordResponseSchema, {
      nodeName: f.node,
      time: timestampFromMs(Date.now()),
      responseType: {
        case: "stopped",
        value: create(recorder.RecordingStoppedResponseSchema, {
          stats: statsMessage(f.stats),
          filesink: create(recorder.FileSinkResultSchema, { filePath: f.path }),
        }),
      },
    }),
  );
}

/** Registers recorder.Recorder on `router`. */
export function recorderRoutes(deps: RecorderServiceDeps): (router: ConnectRouter) => void {
  return (router) => {
    router.service(recorder.Recorder, {
      record: (requests, ctx) => record(deps, requests, ctx),
    });
  };
}

async function* record(
  deps: RecorderServiceDeps,
  requests: AsyncIterable<recorder.RecordRequest>,
  ctx: HandlerContext,
): AsyncGenerator<recorder.RecordResponse> {
  const it = requests[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done || first.value.requestType.case !== "start") {
    throw new ConnectError("request_type: the first request must be start", Code.InvalidArgument);
  }
  const plan = planRecording(first.value.requestType.value);
  let wake: (() => void) | undefined;
  let stopReason: StopReason | undefined;
  const stopWith = (reason: StopReason): void => {
    stopReason ??= reason;
    wake?.();
  };
  let session: RecordingSession;
  try {
    session = await deps.startSession(plan, stopWith);
  } catch (err) {
    if (err instanceof ConnectError) throw err;
    throw new ConnectError(err instanceof Error ? err.message : String(err), Code.Unavailable);
  }
  const onAbort = (): void => stopWith("client-gone");
  ctx.signal.addEventListener("abort", onAbort);
  const onShutdown = (): void => stopWith("shutdown");
  deps.shutdown?.addEventListener("abort", onShutdown);
  if (ctx.signal.aborted) onAbort();
  if (deps.shutdown?.aborted) onShutdown();
  // The rest of the request stream: `stop` ends the recording; its end alone does not.
  void (async () => {
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        if (r.value.requestType.case === "stop") {
          stopWith("client");
          return;
        }
      }
    } catch {
      stopWith("client-gone");
    }
  })();
  try {
    const every = deps.progressMs ?? 1000;
    while (stopReason === undefined) {
      yield create(recorder.RecordResponseSchema, {
        nodeName: deps.nodeName,
        time: timestampFromMs(Date.now()),
        responseType: {
          case: "running",
          value: create(recorder.RecordingRunningResponseSchema, {
            stats: statsMessage(session.stats()),
          }),
        },
      });
      await new Promise<void>((resolve) => {
        wake = resolve;
        const t = setTimeout(resolve, every);
        if (stopReason !== undefined) {
          clearTimeout(t);
          resolve();
        }
      });
      wake = undefined;
    }
    const files = await session.stop(stopReason);
    deps.log.info({ id: session.id, reason: stopReason, files: files.length }, "record call ends");
    if (stopReason === "client-gone") return;
    for (const r of stoppedResponses(files)) yield r;
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    deps.shutdown?.removeEventListener("abort", onShutdown);
    await session.stop(stopReason ?? "client-gone");
  }
}
