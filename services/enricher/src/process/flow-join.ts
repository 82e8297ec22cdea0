import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import { formatIPv4, formatIPv6 } from "@periscope/model";
import { type Flow, processV1 } from "@periscope/proto";
import { decodeSockOwnerRecord, SOCK_SOURCE, type SockOwnerRecord } from "@periscope/wire";
import type { ContainerCache, ContainerInfo } from "./container-cache.ts";
import type { ProcessCache } from "./process-cache.ts";

/** Type URL of the extension a flow carries. */
export const PROCESS_TYPE_URL = "type.googleapis.com/periscope.process.v1.Process";

const SOURCE_NAMES: Record<number, string> = {
  [SOCK_SOURCE.TCP_CONNECT]: "connect",
  [SOCK_SOURCE.TCP_ACCEPT]: "accept",
  [SOCK_SOURCE.UDP]: "udp",
  [SOCK_SOURCE.BACKFILL]: "backfill",
};

/** One socket's owner, as the join keeps it. */
interface Owner {
  rec: SockOwnerRecord;
  /** Encoded Any (null: not built yet), rebuilt when the container learned its name. */
  any: Uint8Array | null;
  anyContainerName: string;
  seenMs: number;
}

/** Options of a FlowProcesses. */
export interface FlowProcessesOptions {
  /** Most sockets remembered (oldest first out). Default 65,536. */
  maxSockets?: number;
}

/** Counters of a FlowProcesses. */
export interface FlowProcessStats {
  ownerRecords: number;
  flowsWithProcess: number;
  flowsWithoutProcess: number;
  evicted: number;
}

/**
 * Joins socket-owner records to the flows of their socket: records arrive in the raw
 * partition of their flow, each is remembered by its directed tuple (own address and port →
 * peer's), and a packet from A to B carries the process whose socket is A (the sender), or
 * else the one whose socket is B (the receiver). The netns cookie picks between sockets with
 * the same tuple in different namespaces; with no owner in the packet's namespace, the
 * newest owner of the tuple is taken (a packet seen on the host side of a veth).
 */
export class FlowProcesses {
  private readonly byTuple = new Map<string, Owner[]>();
  private readonly maxSockets: number;
  private sockets = 0;
  /** Counters. */
  readonly stats: FlowProcessStats = {
    ownerRecords: 0,
    flowsWithProcess: 0,
    flowsWithoutProcess: 0,
    evicted: 0,
  };

  constructor(
    private readonly processes: ProcessCache,
    private readonly containers?: ContainerCache,
    opts: FlowProcessesOptions = {},
  ) {
    this.maxSockets = opts.maxSockets ?? 65_536;
  }

  /**
   * Remembers the owner in one socket-owner record.
   * @throws MalformedRecordError when the record does not decode.
   */
  noteOwner(bytes: Uint8Array, nowMs = Date.now()): void {
    const rec = decodeSockOwnerRecord(bytes);
    this.stats.ownerRecords++;
    const own = rec.family === 6 ? formatIPv6(rec.saddr, 0) : formatIPv4(rec.saddr, 0);
    const peer = rec.family === 6 ? formatIPv6(rec.daddr, 0) : formatIPv4(rec.daddr, 0);
    const key = tupleKey(rec.proto, own, rec.sport, peer, rec.dport);
    const list = this.byTuple.get(key);
    const owner: Owner = { rec, any: null, anyContainerName: "", seenMs: nowMs };
    if (list === undefined) {
      if (this.sockets >= this.maxSockets) this.evictOldest();
      this.byTuple.set(key, [owner]);
      this.sockets++;
      return;
    }
    const same = list.findIndex((o) => o.rec.netnsCookie === rec.netnsCookie);
    if (same >= 0) list[same] = owner;
    else {
      list.push(owner);
      this.sockets++;
    }
  }

  /** Sockets remembered. */
  get size(): number {
    return this.sockets;
  }

  /**
   * The encoded `google.protobuf.Any` holding the Process of a packet from src:sport to
   * dst:dport (proto 6 or 17) seen in namespace `netnsCookie`; undefined when no socket owner is known.
   */
  anyBytes(
    netnsCookie: bigint,
    proto: number,
    src: string,
    sport: number,
    dst: string,
    dport: number,
  ): Uint8Array | undefined {
    const owner =
      this.find(netnsCookie, tupleKey(proto, src, sport, dst, dport)) ??
      this.find(netnsCookie, tupleKey(proto, dst, dport, src, sport));
    if (owner === undefined) {
      this.stats.flowsWithoutProcess++;
      return undefined;
    }
    this.stats.flowsWithProcess++;
    const container = this.containerOf(owner);
    const name = container?.name ?? "";
    if (owner.any === null || owner.anyContainerName !== name) {
      owner.any = toBinary(AnySchema, this.anyOf(owner.rec, container));
      owner.anyContainerName = name;
    }
    return owner.any;
  }

  /** Like anyBytes, as a message (for flows built by the reference path). */
  any(
    netnsCookie: bigint,
    proto: number,
    src: string,
    sport: number,
    dst: string,
    dport: number,
  ): Any | undefined {
    const bytes = this.anyBytes(netnsCookie, proto, src, sport, dst, dport);
    return bytes === undefined ? undefined : fromBinary(AnySchema, bytes);
  }

  /** The Process message of an owner record, completed from the caches. */
  processOf(rec: SockOwnerRecord, container?: ContainerInfo): processV1.Process {
    const p = this.processes.lookup(rec.tgid, rec.startNs);
    const c = container ?? (p !== undefined ? this.containers?.lookup(p.cgroupPath) : undefined);
    return create(processV1.ProcessSchema, {
      pid: rec.pid,
      tgid: rec.tgid,
      ppid: p?.ppid ?? 0,
      comm: p?.comm || rec.comm,
      binary: p?.binary ?? "",
      args: p?.args ?? [],
      argsTruncated: p?.argsTruncated ?? false,
      uid: rec.uid,
      gid: p?.gid ?? 0,
      euid: p?.euid ?? rec.uid,
      egid: p?.egid ?? 0,
      cgroupId: rec.cgroupId,
      cgroupPath: p?.cgroupPath ?? "",
      startTimeNs: rec.startNs !== 0n ? rec.startNs : (p?.startNs ?? 0n),
      socketSource: SOURCE_NAMES[rec.source] ?? "",
      ...(c !== undefined
        ? {
            container: create(processV1.ContainerSchema, {
              id: c.id,
              name: c.name,
              image: c.image,
              runtime: c.runtime,
              labels: c.labels,
              state: c.state,
            }),
          }
        : {}),
    });
  }

  private anyOf(rec: SockOwnerRecord, container?: ContainerInfo): Any {
    return create(AnySchema, {
      typeUrl: PROCESS_TYPE_URL,
      value: toBinary(processV1.ProcessSchema, this.processOf(rec, container)),
    });
  }

  private containerOf(owner: Owner): ContainerInfo | undefined {
    if (this.containers === undefined) return undefined;
    const p = this.processes.lookup(owner.rec.tgid, owner.rec.startNs);
    return p !== undefined && p.cgroupPath !== ""
      ? this.containers.lookup(p.cgroupPath)
      : undefined;
  }

  private find(netnsCookie: bigint, key: string): Owner | undefined {
    const list = this.byTuple.get(key);
    if (list === undefined) return undefined;
    for (const o of list) if (o.rec.netnsCookie === netnsCookie) return o;
    return list[list.length - 1];
  }

  private evictOldest(): void {
    const first = this.byTuple.keys().next();
    if (first.done) return;
    const n = this.byTuple.get(first.value)?.length ?? 0;
    this.byTuple.delete(first.value);
    this.sockets -= n;
    this.stats.evicted += n;
  }
}

function tupleKey(proto: number, a: string, ap: number, b: string, bp: number): string {
  return `${proto}|${a}|${ap}|${b}|${bp}`;
}

/** Byte offset of netns_cookie in a trace record (TRACE_LAYOUT). */
const TRACE_NETNS_COOKIE = 40;

/**
 * Sets `flow.extensions` to the Process of its socket when one is known (TCP and UDP flows
 * with addresses); `record` is the trace record the flow came from (for its netns cookie).
 */
export function attachProcess(join: FlowProcesses, flow: Flow, record: Uint8Array): void {
  const ip = flow.IP;
  const l4 = flow.l4?.protocol;
  if (ip === undefined || l4 === undefined || record.byteLength < TRACE_NETNS_COOKIE + 8) return;
  if (l4.case !== "TCP" && l4.case !== "UDP") return;
  const cookie = new DataView(record.buffer, record.byteOffset, record.byteLength).getBigUint64(
    TRACE_NETNS_COOKIE,
    true,
  );
  const any = join.any(
    cookie,
    l4.case === "TCP" ? 6 : 17,
    ip.source,
    l4.value.sourcePort,
    ip.destination,
    l4.value.destinationPort,
  );
  if (any !== undefined) flow.extensions = any;
}
