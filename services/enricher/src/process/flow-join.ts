import { create, fromBinary } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import { formatIPv4, formatIPv6 } from "@periscope/model";
import { compileEncoder, type Flow, processV1 } from "@periscope/proto";
import { decodeSockOwnerRecord, SOCK_SOURCE, type SockOwnerRecord } from "@periscope/wire";
import type { ContainerCache, ContainerInfo } from "./container-cache.ts";
import type { ProcessCache, ProcessEntry } from "./process-cache.ts";

/**
 * Encoders of the extension (the flow batch may be open in the compiled encoders' buffer
 * while they run: they write apart then).
 */
const encodeAny = compileEncoder(AnySchema);
const encodeProcess = compileEncoder(processV1.ProcessSchema);

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
  /** The socket's own address and its peer's, as flows write them. */
  own: string;
  peer: string;
  /** The record's netns cookie as a number (cookies count up from 1: exact below 2^53). */
  cookie: number;
  /** Encoded Any (null: not built yet), rebuilt when what it was built from changed. */
  any: Uint8Array | null;
  /** The process, its binary and the container name the Any was built with. */
  anyProc: ProcessEntry | undefined;
  anyBinary: string;
  anyContainerName: string;
  /** Sweep generation of the record or of the last flow joined to it. */
  usedGen: number;
  /** Date.now() of the last process lookup that missed (0: none). */
  missMs: number;
  /** The next owner with the same protocol and ports (newer). */
  next: Owner | undefined;
}

/** Options of a FlowProcesses. */
export interface FlowProcessesOptions {
  /** Most sockets remembered (oldest first out). Default 65,536. */
  maxSockets?: number;
  /** A socket owner no flow used for this long is forgotten, ms. Default 15 min. */
  idleMs?: number;
  /** A process lookup that missed is retried for the same socket after this long, ms. Default 1000. */
  missRetryMs?: number;
}

/** Why a TCP/UDP flow carries no process, or only the socket-owner record's part of it. */
export type JoinMiss = "no_owner" | "owner_expired" | "process_unknown";

/** Counters of a FlowProcesses. */
export interface FlowProcessStats {
  /** Socket-owner records received. */
  ownerRecords: number;
  /** Flows whose owner and process are known. */
  flowsWithProcess: number;
  /** Flows without an owner (no_owner + owner_expired). */
  flowsWithoutProcess: number;
  /** No socket-owner record for the flow's tuple. */
  noOwner: number;
  /** The tuple's owner was forgotten (idle or evicted for room). */
  ownerExpired: number;
  /**
   * An owner, but its (tgid, start) is not in the process cache: the flow carries the
   * record's pid, uid, cgroup id and comm only.
   */
  processUnknown: number;
  /** Owners forgotten because the table was full. */
  evicted: number;
  /** Owners forgotten after idleMs without a flow. */
  idleExpired: number;
}

/** Remembered keys of forgotten owners at most (to tell owner_expired from no_owner). */
const MAX_GONE = 16_384;

/**
 * Joins socket-owner records to the flows of their socket: records arrive in the raw
 * partition of their flow, each is remembered by its directed tuple (own address and port →
 * peer's), and a packet from A to B carries the process whose socket is A (the sender), or
 * else the one whose socket is B (the receiver). The netns cookie picks between sockets with
 * the same tuple in different namespaces; with no owner in the packet's namespace, the
 * newest owner of the tuple is taken (a packet seen on the host side of a veth).
 */
export class FlowProcesses {
  /**
   * Owners by protocol and ports ({@link portKey}: no string built per flow): the oldest of
   * a chain linked by `next`, addresses compared along it.
   */
  private readonly byPorts = new Map<number, Owner>();
  /** Tuple keys of forgotten owners, oldest first. */
  private readonly gone = new Map<string, number>();
  /** Forgotten tuples per port key: strings are built on a miss only when one shares its ports. */
  private readonly gonePorts = new Map<number, number>();
  private readonly maxSockets: number;
  private readonly idleMs: number;
  private readonly missRetryMs: number;
  private sockets = 0;
  /** Sweeps so far; an owner unused for 4 of them (≥ idleMs) is forgotten. */
  private gen = 0;
  private joins = 0;
  private lastSweepMs = Date.now();
  /** Counters. */
  readonly stats: FlowProcessStats = {
    ownerRecords: 0,
    flowsWithProcess: 0,
    flowsWithoutProcess: 0,
    noOwner: 0,
    ownerExpired: 0,
    processUnknown: 0,
    evicted: 0,
    idleExpired: 0,
  };

  constructor(
    private readonly processes: ProcessCache,
    private readonly containers?: ContainerCache,
    opts: FlowProcessesOptions = {},
  ) {
    this.maxSockets = opts.maxSockets ?? 65_536;
    this.idleMs = opts.idleMs ?? 15 * 60_000;
    this.missRetryMs = opts.missRetryMs ?? 1000;
  }

  /**
   * Remembers the owner in one socket-owner record.
   * @throws MalformedRecordError when the record does not decode.
   */
  noteOwner(bytes: Uint8Array, nowMs = Date.now()): void {
    const rec = decodeSockOwnerRecord(bytes);
    this.stats.ownerRecords++;
    this.tick(nowMs);
    const own = rec.family === 6 ? formatIPv6(rec.saddr, 0) : formatIPv4(rec.saddr, 0);
    const peer = rec.family === 6 ? formatIPv6(rec.daddr, 0) : formatIPv4(rec.daddr, 0);
    const key = portKey(rec.proto, rec.sport, rec.dport);
    const head = this.byPorts.get(key);
    const owner: Owner = {
      rec,
      own,
      peer,
      cookie: Number(rec.netnsCookie),
      any: null,
      anyProc: undefined,
      anyBinary: "",
      anyContainerName: "",
      usedGen: this.gen,
      missMs: 0,
      next: undefined,
    };
    if (this.gonePorts.has(key)) this.forget(ownerKey(owner));
    if (head === undefined) {
      if (this.sockets >= this.maxSockets) this.evictOldest();
      this.byPorts.set(key, owner);
      this.sockets++;
      return;
    }
    // The same socket tuple again (a new socket on it): its owner is replaced in place.
    let last = head;
    for (let o: Owner | undefined = head; o !== undefined; o = o.next) {
      if (o.own === own && o.peer === peer && o.cookie === owner.cookie) {
        owner.next = o.next;
        Object.assign(o, owner);
        return;
      }
      last = o;
    }
    if (this.sockets >= this.maxSockets) {
      this.evictOldest();
      // The chain itself may have been the oldest.
      if (!this.byPorts.has(key)) {
        this.byPorts.set(key, owner);
        this.sockets++;
        return;
      }
    }
    last.next = owner;
    this.sockets++;
  }

  /**
   * Starts a new sweep generation and forgets the owners no flow used in the last four
   * (sweeps run idleMs / 4 apart at the earliest); returns how many went.
   */
  sweep(nowMs = Date.now()): number {
    this.lastSweepMs = nowMs;
    this.gen++;
    let dropped = 0;
    for (const [key, head] of this.byPorts) {
      let first: Owner | undefined;
      let tail: Owner | undefined;
      for (let o: Owner | undefined = head; o !== undefined; ) {
        const next: Owner | undefined = o.next;
        if (this.gen - o.usedGen < 4) {
          o.next = undefined;
          if (tail === undefined) first = o;
          else tail.next = o;
          tail = o;
        } else {
          this.remember(o);
          dropped++;
        }
        o = next;
      }
      if (first === undefined) this.byPorts.delete(key);
      else if (first !== head) this.byPorts.set(key, first);
    }
    this.sockets -= dropped;
    this.stats.idleExpired += dropped;
    return dropped;
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
    if ((++this.joins & 4095) === 0) this.tick(Date.now());
    const cookie = Number(netnsCookie);
    const owner =
      this.find(cookie, proto, src, sport, dst, dport) ??
      this.find(cookie, proto, dst, dport, src, sport);
    if (owner === undefined) {
      this.stats.flowsWithoutProcess++;
      if (
        (this.gonePorts.has(portKey(proto, sport, dport)) &&
          this.gone.has(tupleKey(proto, src, sport, dst, dport))) ||
        (this.gonePorts.has(portKey(proto, dport, sport)) &&
          this.gone.has(tupleKey(proto, dst, dport, src, sport)))
      ) {
        this.stats.ownerExpired++;
      } else this.stats.noOwner++;
      return undefined;
    }
    owner.usedGen = this.gen;
    // The entry found once stays this socket's process (the cache updates entries in place).
    // A miss reads /proc: retried for this socket at most every missRetryMs.
    let p = owner.anyProc;
    if (p === undefined && (owner.missMs === 0 || Date.now() - owner.missMs >= this.missRetryMs)) {
      p = this.processes.lookup(owner.rec.tgid, owner.rec.startNs);
      owner.missMs = p === undefined ? Date.now() : 0;
    }
    if (p === undefined) this.stats.processUnknown++;
    else {
      this.stats.flowsWithProcess++;
      if (p.cgroupPath === "") this.processes.fillPath(p);
    }
    const container =
      p !== undefined && p.cgroupPath !== "" ? this.containers?.lookup(p.cgroupPath) : undefined;
    const name = container?.name ?? "";
    if (
      owner.any === null ||
      owner.anyProc !== p ||
      owner.anyBinary !== (p?.binary ?? "") ||
      owner.anyContainerName !== name
    ) {
      owner.any = encodeAny(
        create(AnySchema, {
          typeUrl: PROCESS_TYPE_URL,
          value: encodeProcess(this.processOf(owner.rec, p ?? null, container)),
        }),
      );
      owner.anyProc = p;
      owner.anyBinary = p?.binary ?? "";
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

  /**
   * The Process message of an owner record, completed from `p` (by default the cache's
   * entry of its (tgid, start); null: none) and its container.
   */
  processOf(
    rec: SockOwnerRecord,
    p: ProcessEntry | null = this.processes.lookup(rec.tgid, rec.startNs) ?? null,
    container?: ContainerInfo,
  ): processV1.Process {
    const c = container ?? (p !== null ? this.containers?.lookup(p.cgroupPath) : undefined);
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
      nsPid: p?.nsPid ?? 0,
      ...(c !== undefined
        ? {
            container: {
              id: c.id,
              name: c.name,
              image: c.image,
              runtime: c.runtime,
              labels: c.labels,
              state: c.state,
            },
          }
        : {}),
    });
  }

  /** Sweeps when idleMs / 4 passed since the last sweep. */
  private tick(nowMs: number): void {
    if (nowMs - this.lastSweepMs >= this.idleMs / 4) this.sweep(nowMs);
  }

  /** Notes a forgotten owner's tuple (bounded, oldest forgotten first). */
  private remember(o: Owner): void {
    const key = ownerKey(o);
    if (this.gone.has(key)) return;
    const ports = portKey(o.rec.proto, o.rec.sport, o.rec.dport);
    this.gone.set(key, ports);
    this.gonePorts.set(ports, (this.gonePorts.get(ports) ?? 0) + 1);
    if (this.gone.size > MAX_GONE) {
      const first = this.gone.keys().next();
      if (!first.done) this.forget(first.value);
    }
  }

  /** Drops a tuple from the forgotten ones. */
  private forget(key: string): void {
    const ports = this.gone.get(key);
    if (ports === undefined) return;
    this.gone.delete(key);
    const n = (this.gonePorts.get(ports) ?? 1) - 1;
    if (n === 0) this.gonePorts.delete(ports);
    else this.gonePorts.set(ports, n);
  }

  /** The owner of socket own:ownPort ↔ peer:peerPort in `netnsCookie`, else the newest in any namespace. */
  private find(
    cookie: number,
    proto: number,
    own: string,
    ownPort: number,
    peer: string,
    peerPort: number,
  ): Owner | undefined {
    let newest: Owner | undefined;
    for (let o = this.byPorts.get(portKey(proto, ownPort, peerPort)); o !== undefined; o = o.next) {
      if (o.own !== own || o.peer !== peer) continue;
      if (o.cookie === cookie) return o;
      newest = o;
    }
    return newest;
  }

  private evictOldest(): void {
    const first = this.byPorts.entries().next();
    if (first.done) return;
    const [key, head] = first.value;
    this.byPorts.delete(key);
    let n = 0;
    for (let o: Owner | undefined = head; o !== undefined; o = o.next) {
      this.remember(o);
      n++;
    }
    this.sockets -= n;
    this.stats.evicted += n;
  }
}

/** Protocol and ports as one number (below 2^41). */
const portKey = (proto: number, ownPort: number, peerPort: number): number =>
  proto * 4_294_967_296 + ownPort * 65_536 + peerPort;

/** A forgotten owner's tuple, as `gone` keeps it. */
const ownerKey = (o: Owner): string =>
  tupleKey(o.rec.proto, o.own, o.rec.sport, o.peer, o.rec.dport);

function tupleKey(proto: number, a: string, ap: number, b: string, bp: number): string {
  return `${proto}|${a}|${ap}|${b}|${bp}`;
}

/**
 * Byte offset of netns_cookie in trace, drop and policy verdict records (TRACE_LAYOUT,
 * DROP_LAYOUT, POLICY_VERDICT_LAYOUT all put it here; flow-join.test.ts holds them to it).
 */
export const TRACE_NETNS_COOKIE = 40;

/**
 * Sets `flow.extensions` to the Process of its socket when one is known (TCP and UDP flows
 * with addresses); `record` is the trace, drop or policy verdict record the flow came from
 * (for its netns cookie).
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
