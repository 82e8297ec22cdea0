/**
 * Where the telemetry hub's events come from: process lifecycle RawFrames on
 * `periscope.proc.>` (decoded here; every exec, fork and exit is also republished as a
 * `TelemetryEvent` on `periscope.telemetry.<node>.<exec|fork|exit>` for direct NATS
 * subscribers), container lifecycle `TelemetryEvent`s on `periscope.telemetry.*.container`,
 * and, only while a subscription asks for flows or drops, the FlowBatches on
 * `periscope.flows.>`. Undecodable input is counted and skipped, never fatal.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyUnpack, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Subscription as NatsSubscription } from "@nats-io/transport-node";
import { type Bus, sanitizeToken, subjects } from "@periscope/bus";
import { FlowBatchSchema, processV1, RawFrameSchema, telemetryV1, Verdict } from "@periscope/proto";
import type { Logger } from "@periscope/telemetry";
import {
  decodeProcRecord,
  PROC_EVENT,
  type ProcRecord,
  RECORD_TYPE_PROC,
  rawFrameRecords,
} from "@periscope/wire";
import { PROCESS_KINDS, type TelemetryHub } from "./telemetry.ts";

const { EventKind, TelemetryEventSchema } = telemetryV1;
type TelemetryEvent = telemetryV1.TelemetryEvent;

/** `periscope.telemetry.<node>.<kind>`: TelemetryEvent (protobuf) for direct subscribers. */
export function telemetrySubject(node: string, kind: string): string {
  return `periscope.telemetry.${sanitizeToken(node)}.${kind}`;
}

/** Container lifecycle events from every node. */
export const CONTAINER_EVENTS_SUBJECT = "periscope.telemetry.*.container";

/** What a process looked like at its last exec (kept until it exits). */
interface Known {
  binary: string;
  args: string[];
  truncated: boolean;
}

/** Settings of {@link startTelemetrySources}. */
export interface TelemetrySourceOptions {
  readonly bus: Bus;
  readonly hub: TelemetryHub;
  readonly log: Logger;
  /** Republish process events on `periscope.telemetry.<node>.<kind>` (default true). */
  readonly republish?: boolean;
  /** Counts undecodable input by kind. */
  readonly onError?: (kind: string) => void;
  /** cgroup v2 mount for container lookups by cgroup id (default: found in /proc/self/mounts). */
  readonly cgroupRoot?: string;
  /** Processes remembered between exec and exit (default 65536). */
  readonly maxKnown?: number;
}

/** Running sources. */
export interface TelemetrySources {
  /** Process records decoded, malformed, lost at the source (kernel, collector, gaps). */
  stats(): { records: number; malformed: number; sourceLost: number };
  stop(): Promise<void>;
}

const CONTAINER_PATTERNS: readonly [RegExp, string][] = [
  [/docker-([0-9a-f]{64})\.scope$/, "docker"],
  [/\/docker\/([0-9a-f]{64})$/, "docker"],
  [/cri-containerd-([0-9a-f]{64})\.scope$/, "containerd"],
  [/crio-([0-9a-f]{64})\.scope$/, "cri-o"],
  [/libpod-([0-9a-f]{64})\.scope$/, "podman"],
];

/** Where cgroup2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts). */
function cgroup2Mount(): string {
  try {
    for (const line of readFileSync("/proc/self/mounts", "utf8").split("\n")) {
      const [, dir, type] = line.split(" ");
      if (type === "cgroup2" && dir !== undefined) return dir.replace(/\\040/g, " ");
    }
  } catch {
    // No /proc: no container lookups by cgroup id.
  }
  return "/sys/fs/cgroup";
}

/** cgroup id (inode of the cgroup directory) → path, by walking the hierarchy on a miss. */
export class CgroupIds {
  readonly #paths = new Map<bigint, string>();
  #scannedAt = 0;
  /** `rescanMs`: the least time between two walks. */
  constructor(
    readonly root: string,
    private readonly rescanMs = 1000,
  ) {}

  /**
   * Path of cgroup `id`. On a miss, first the path `/proc/<tgid>/cgroup` names when its
   * directory is `id` (a cgroup made since the last walk, e.g. of a container just
   * started), then a walk of the hierarchy, at most once a second.
   */
  path(id: bigint, tgid = 0): string | undefined {
    const hit = this.#paths.get(id);
    if (hit !== undefined || id === 0n) return hit;
    const own = tgid > 0 ? this.#fromProc(id, tgid) : undefined;
    if (own !== undefined) return own;
    const now = Date.now();
    if (now - this.#scannedAt < this.rescanMs) return undefined;
    this.#scannedAt = now;
    this.#paths.clear();
    this.#walk(this.root, "/", 0);
    return this.#paths.get(id);
  }

  #fromProc(id: bigint, tgid: number): string | undefined {
    try {
      const line = readFileSync(`/proc/${tgid}/cgroup`, "utf8")
        .split("\n")
        .find((l) => l.startsWith("0::"));
      if (line === undefined) return undefined;
      const rel = line.slice(3);
      if (statSync(join(this.root, rel), { bigint: true }).ino !== id) return undefined;
      this.#paths.set(id, rel);
      return rel;
    } catch {
      return undefined; // gone, or another pid namespace
    }
  }

  #walk(dir: string, rel: string, depth: number): void {
    try {
      this.#paths.set(BigInt(statSync(dir, { bigint: true }).ino), rel);
      if (depth > 8) return;
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) this.#walk(join(dir, e.name), join(rel, e.name), depth + 1);
      }
    } catch {
      // Gone while walking, or not readable: skipped.
    }
  }
}

/** Starts the sources feeding `hub`. */
export function startTelemetrySources(o: TelemetrySourceOptions): TelemetrySources {
  const { bus, hub, log } = o;
  const republish = o.republish ?? true;
  const maxKnown = o.maxKnown ?? 65536;
  const known = new Map<string, Known>();
  const containers = new Map<string, processV1.Container>();
  const cgroups = new CgroupIds(o.cgroupRoot ?? cgroup2Mount());
  const expected = new Map<string, bigint>();
  const stats = { records: 0, malformed: 0, sourceLost: 0 };
  const subs: NatsSubscription[] = [];

  const containerOf = (cgroupId: bigint, tgid: number): processV1.Container | undefined => {
    const path = cgroups.path(cgroupId, tgid);
    if (path === undefined) return undefined;
    for (const [re, runtime] of CONTAINER_PATTERNS) {
      const m = re.exec(path);
      if (m?.[1] === undefined) continue;
      return (
        containers.get(m[1]) ??
        create(processV1.ContainerSchema, { id: m[1], runtime, state: "running" })
      );
    }
    return undefined;
  };

  const remember = (key: string, k: Known): void => {
    known.delete(key);
    known.set(key, k);
    if (known.size > maxKnown) {
      const oldest = known.keys().next().value;
      if (oldest !== undefined) known.delete(oldest);
    }
  };

  const onProc = (node: string, rec: ProcRecord, bootToRealtimeNs: bigint): void => {
    const kind =
      rec.event === PROC_EVENT.EXEC
        ? EventKind.PROCESS_EXEC
        : rec.event === PROC_EVENT.FORK
          ? EventKind.PROCESS_FORK
          : rec.event === PROC_EVENT.EXIT
            ? EventKind.PROCESS_EXIT
            : undefined;
    if (kind === undefined) {
      stats.malformed++;
      o.onError?.("telemetry_proc_event");
      return;
    }
    const key = `${node}/${rec.tgid}/${rec.startNs}`;
    let info: Known | undefined;
    if (kind === EventKind.PROCESS_EXEC) {
      info = { binary: rec.binary, args: rec.args, truncated: rec.truncated };
      remember(key, info);
    } else if (kind === EventKind.PROCESS_FORK) {
      info = known.get(`${node}/${rec.ppid}/${rec.parentStartNs}`);
      if (info) remember(key, info);
    } else {
      info = known.get(key);
      known.delete(key);
    }
    const process = create(processV1.ProcessSchema, {
      pid: rec.pid,
      tgid: rec.tgid,
      ppid: rec.ppid,
      comm: rec.comm,
      binary: info?.binary ?? "",
      args: info?.args ?? [],
      argsTruncated: info?.truncated ?? false,
      uid: rec.uid,
      gid: rec.gid,
      euid: rec.euid,
      egid: rec.egid,
      cgroupId: rec.cgroupId,
      startTimeNs: rec.startNs,
      nsPid: rec.nsTgid,
      container: containerOf(rec.cgroupId, rec.tgid),
    });
    const timeMs = Number((rec.tsBootNs + bootToRealtimeNs) / 1_000_000n);
    const facts = { kind, node, timeMs, process };
    const build = (): TelemetryEvent => {
      const time = timestampFromMs(timeMs);
      if (kind === EventKind.PROCESS_EXEC) {
        return create(TelemetryEventSchema, {
          time,
          nodeName: node,
          event: { case: "exec", value: create(telemetryV1.ProcessExecSchema, { process }) },
        });
      }
      if (kind === EventKind.PROCESS_FORK) {
        return create(TelemetryEventSchema, {
          time,
          nodeName: node,
          event: { case: "fork", value: create(telemetryV1.ProcessForkSchema, { process }) },
        });
      }
      const runNs = rec.tsBootNs > rec.startNs ? rec.tsBootNs - rec.startNs : 0n;
      return create(TelemetryEventSchema, {
        time,
        nodeName: node,
        event: {
          case: "exit",
          value: create(telemetryV1.ProcessExitSchema, {
            process,
            code: (rec.exitStatus >> 8) & 0xff,
            signal: rec.exitStatus & 0x7f,
            runTime: { seconds: runNs / 1_000_000_000n, nanos: Number(runNs % 1_000_000_000n) },
          }),
        },
      });
    };
    hub.publish(facts, build);
    if (republish) {
      const name =
        kind === EventKind.PROCESS_EXEC
          ? "exec"
          : kind === EventKind.PROCESS_FORK
            ? "fork"
            : "exit";
      bus.nc.publish(telemetrySubject(node, name), toBinary(TelemetryEventSchema, build()));
    }
  };

  const procSub = bus.nc.subscribe(subjects.procAll, {
    callback: (err, msg) => {
      if (err) return;
      let frame: ReturnType<typeof fromBinary<typeof RawFrameSchema>>;
      try {
        frame = fromBinary(RawFrameSchema, msg.data);
      } catch (e) {
        stats.malformed++;
        o.onError?.("telemetry_proc_frame");
        log.warn({ err: e, subject: msg.subject }, "undecodable process frame");
        return;
      }
      const split = rawFrameRecords(frame);
      const streamKey = `${frame.nodeName}/${frame.bootId}`;
      const want = expected.get(streamKey);
      let lost = Number(frame.kernelLost + frame.collectorLost);
      if (want !== undefined && frame.recordsBefore > want)
        lost += Number(frame.recordsBefore - want);
      expected.set(streamKey, frame.recordsBefore + BigInt(split.records.length + split.malformed));
      if (lost > 0) {
        stats.sourceLost += lost;
        hub.reportSourceLoss(PROCESS_KINDS, lost);
      }
      if (split.malformed > 0) stats.malformed += split.malformed;
      for (const r of split.records) {
        if (r[0] !== RECORD_TYPE_PROC) {
          stats.malformed++;
          o.onError?.("telemetry_proc_record");
          continue;
        }
        let rec: ProcRecord;
        try {
          rec = decodeProcRecord(r);
        } catch {
          stats.malformed++;
          o.onError?.("telemetry_proc_record");
          continue;
        }
        stats.records++;
        onProc(frame.nodeName, rec, frame.bootToRealtimeNs);
      }
    },
  });
  subs.push(procSub);

  const containerSub = bus.nc.subscribe(CONTAINER_EVENTS_SUBJECT, {
    callback: (err, msg) => {
      if (err) return;
      let ev: TelemetryEvent;
      try {
        ev = fromBinary(TelemetryEventSchema, msg.data);
      } catch {
        o.onError?.("telemetry_container_event");
        return;
      }
      if (ev.event.case !== "container" || ev.event.value.container === undefined) {
        o.onError?.("telemetry_container_event");
        return;
      }
      const ct = ev.event.value.container;
      if (ct.id !== "") {
        if (ev.event.value.action === "destroyed") containers.delete(ct.id);
        else containers.set(ct.id, ct);
      }
      const timeMs = ev.time ? Number(ev.time.seconds) * 1000 + ev.time.nanos / 1e6 : Date.now();
      hub.publish(
        { kind: EventKind.CONTAINER, node: ev.nodeName, timeMs, container: ct },
        () => ev,
      );
    },
  });
  subs.push(containerSub);

  let flowSub: NatsSubscription | undefined;
  const processOfFlow = (
    ext: { typeUrl: string; value: Uint8Array } | undefined,
  ): processV1.Process | undefined => {
    if (ext === undefined || !ext.typeUrl.endsWith("/periscope.process.v1.Process"))
      return undefined;
    try {
      return anyUnpack(ext as Parameters<typeof anyUnpack>[0], processV1.ProcessSchema);
    } catch {
      return undefined;
    }
  };
  const syncFlows = (): void => {
    const want = hub.wants(EventKind.FLOW) || hub.wants(EventKind.DROP);
    if (want && !flowSub) {
      flowSub = bus.nc.subscribe(subjects.flowsAll, {
        callback: (err, msg) => {
          if (err) return;
          let batch: ReturnType<typeof fromBinary<typeof FlowBatchSchema>>;
          try {
            batch = fromBinary(FlowBatchSchema, msg.data);
          } catch {
            o.onError?.("telemetry_flow_batch");
            return;
          }
          for (const r of batch.responses) {
            if (r.responseTypes.case !== "flow") continue;
            const flow = r.responseTypes.value;
            const dropped = flow.verdict === Verdict.DROPPED;
            const kind = dropped ? EventKind.DROP : EventKind.FLOW;
            const process = processOfFlow(flow.extensions);
            const time = flow.time ?? r.time;
            const timeMs = time ? Number(time.seconds) * 1000 + time.nanos / 1e6 : Date.now();
            hub.publish({ kind, node: flow.nodeName || r.nodeName, timeMs, process }, () =>
              create(TelemetryEventSchema, {
                time,
                nodeName: flow.nodeName || r.nodeName,
                event: dropped ? { case: "drop", value: flow } : { case: "flow", value: flow },
              }),
            );
          }
        },
      });
    } else if (!want && flowSub) {
      flowSub.unsubscribe();
      flowSub = undefined;
    }
  };
  const offChange = hub.onChange(syncFlows);

  return {
    stats: () => ({ ...stats }),
    async stop() {
      offChange();
      flowSub?.unsubscribe();
      for (const s of subs) s.unsubscribe();
    },
  };
}
