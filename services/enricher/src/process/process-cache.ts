import { PROC_EVENT, type ProcRecord } from "@periscope/wire";
import type { CgroupPaths } from "./cgroups.ts";
import {
  cgroupV2Path,
  listPids,
  NS_PER_TICK,
  type ProcSnapshot,
  readProc,
  readText,
} from "./procfs.ts";

/** One process as the cache knows it. */
export interface ProcessEntry {
  tgid: number;
  ppid: number;
  comm: string;
  binary: string;
  args: string[];
  argsTruncated: boolean;
  uid: number;
  gid: number;
  euid: number;
  egid: number;
  cgroupId: bigint;
  cgroupPath: string;
  /** Boot-time ns; from /proc only at 10 ms precision. */
  startNs: bigint;
  /** tgid in the process's own pid namespace, 0 when unknown. */
  nsPid: number;
  /** performance.now() of the exit, undefined while running. */
  exitedAt?: number;
  /** Wait status of the exit. */
  exitStatus?: number;
  /** "exec", "fork" or "proc" (read from /proc). */
  origin: "exec" | "fork" | "proc";
  /** The previous process with this tgid, while retained. */
  older?: ProcessEntry;
}

/** Options of a ProcessCache. */
export interface ProcessCacheOptions {
  /** How long an exited process still resolves (late packets, late socket records). Default 60 s. */
  retainMs?: number;
  /** Most processes kept; beyond it the oldest exited ones go first, then the oldest. Default 65536. */
  maxEntries?: number;
  /** Argument bytes kept from /proc cmdline. Default 1024. */
  maxArgBytes?: number;
  /** The proc filesystem root (tests). */
  procRoot?: string;
  /** cgroup id ↔ path resolver. */
  cgroups?: CgroupPaths;
  /** Read /proc for a tgid the records have not told about. Default true. */
  readOnMiss?: boolean;
}

/** Counters of a ProcessCache (exported as metrics by the enricher). */
export interface ProcessCacheStats {
  lookups: number;
  hits: number;
  misses: number;
  procReads: number;
  records: number;
  evicted: number;
}

/** Ticks of a boot-time ns value: the precision /proc and the kernel records share. */
const ticks = (ns: bigint): bigint => ns / NS_PER_TICK;

/**
 * Processes keyed by (tgid, start time), so a reused pid never resolves to the
 * process that had it before. Filled from /proc at start (`backfill`) and kept up to
 * date from the kernel's exec/fork/exit records (`apply`); exited processes stay
 * resolvable for `retainMs`.
 */
export class ProcessCache {
  /** tgid → its newest process; `older` chains a reused pid's retained predecessors. */
  private readonly byTgid = new Map<number, ProcessEntry>();
  private count = 0;
  private readonly retainMs: number;
  private readonly maxEntries: number;
  private readonly maxArgBytes: number;
  private readonly procRoot: string;
  private readonly readOnMiss: boolean;
  /** Counters. */
  readonly stats: ProcessCacheStats = {
    lookups: 0,
    hits: 0,
    misses: 0,
    procReads: 0,
    records: 0,
    evicted: 0,
  };

  constructor(private readonly opts: ProcessCacheOptions = {}) {
    this.retainMs = opts.retainMs ?? 60_000;
    this.maxEntries = opts.maxEntries ?? 65_536;
    this.maxArgBytes = opts.maxArgBytes ?? 1024;
    this.procRoot = opts.procRoot ?? "/proc";
    this.readOnMiss = opts.readOnMiss ?? true;
  }

  /** Processes held (running and retained). */
  get size(): number {
    return this.count;
  }

  /** Reads every process in /proc; returns how many were added. */
  backfill(): number {
    let added = 0;
    for (const pid of listPids(this.procRoot)) {
      if (this.fromProc(pid) !== undefined) added++;
    }
    return added;
  }

  /**
   * The process `tgid` that started at `startNs` (boot-time ns, 0n = unknown: the newest
   * process with that tgid). Reads /proc when the cache has no such process and it runs.
   */
  lookup(tgid: number, startNs = 0n): ProcessEntry | undefined {
    this.stats.lookups++;
    const hit = this.find(tgid, startNs);
    if (hit !== undefined) {
      this.stats.hits++;
      return hit;
    }
    this.stats.misses++;
    if (!this.readOnMiss) return undefined;
    const read = this.fromProc(tgid);
    if (read === undefined) return undefined;
    return startNs === 0n || ticks(read.startNs) === ticks(startNs) ? read : undefined;
  }

  /** The thread group leader of thread `pid` (itself for a leader), from /proc; undefined when gone. */
  leaderOf(pid: number): number | undefined {
    if (this.byTgid.has(pid)) return pid;
    const snap = readProc(pid, 0, this.procRoot);
    return snap?.tgid;
  }

  /**
   * Fills the missing cgroup path of `e` once its cgroup is known (the resolver rescans at
   * most once a second): a cgroup made just before the process started may be unknown then.
   */
  fillPath(e: ProcessEntry): void {
    if (e.cgroupPath !== "" || e.cgroupId === 0n) return;
    e.cgroupPath = this.opts.cgroups?.pathOf(e.cgroupId) ?? "";
  }

  /**
   * Path of cgroup `id` of process `tgid`: the resolver's, else (a cgroup made since its
   * last scan, e.g. a container's just started) the one /proc/<tgid>/cgroup names when its
   * id is `id`; "" when neither knows it.
   */
  private cgroupPathOf(id: bigint, tgid: number): string {
    const cg = this.opts.cgroups;
    if (cg === undefined || id === 0n) return "";
    const known = cg.pathOf(id);
    if (known !== "") return known;
    const path = cgroupV2Path(readText(`${this.procRoot}/${tgid}/cgroup`) ?? "");
    return path !== "" && cg.idOf(path) === id ? path : "";
  }

  /** Applies one exec, fork or exit record. */
  apply(rec: ProcRecord): void {
    this.stats.records++;
    if (rec.event === PROC_EVENT.EXEC) {
      const entry = this.find(rec.tgid, rec.startNs, true);
      const next: ProcessEntry = {
        tgid: rec.tgid,
        ppid: rec.ppid,
        comm: rec.comm,
        binary: rec.binary,
        args: rec.args,
        argsTruncated: rec.truncated,
        uid: rec.uid,
        gid: rec.gid,
        euid: rec.euid,
        egid: rec.egid,
        cgroupId: rec.cgroupId,
        cgroupPath: this.cgroupPathOf(rec.cgroupId, rec.tgid),
        startNs: rec.startNs,
        nsPid: rec.nsTgid,
        origin: "exec",
      };
      if (entry !== undefined) Object.assign(entry, next);
      else this.insert(next);
    } else if (rec.event === PROC_EVENT.FORK) {
      if (this.find(rec.tgid, rec.startNs, true) !== undefined) return;
      const parent = this.find(rec.ppid, rec.parentStartNs, true);
      this.insert({
        tgid: rec.tgid,
        ppid: rec.ppid,
        comm: rec.comm,
        binary: parent?.binary ?? "",
        args: parent?.args ?? [],
        argsTruncated: parent?.argsTruncated ?? false,
        uid: rec.uid,
        gid: rec.gid,
        euid: rec.euid,
        egid: rec.egid,
        cgroupId: rec.cgroupId,
        cgroupPath:
          parent?.cgroupId === rec.cgroupId
            ? parent.cgroupPath
            : this.cgroupPathOf(rec.cgroupId, rec.tgid),
        startNs: rec.startNs,
        nsPid: rec.nsTgid,
        origin: "fork",
      });
    } else if (rec.event === PROC_EVENT.EXIT) {
      const entry = this.find(rec.tgid, rec.startNs, true);
      if (entry !== undefined && entry.exitedAt === undefined) {
        entry.exitedAt = performance.now();
        entry.exitStatus = rec.exitStatus;
      }
    }
    if ((this.stats.records & 1023) === 0) this.sweep();
  }

  /** Drops exited processes older than the retention; returns how many went. */
  sweep(now = performance.now()): number {
    let dropped = 0;
    const expired = (e: ProcessEntry) =>
      e.exitedAt !== undefined && now - e.exitedAt >= this.retainMs;
    for (const [tgid, head] of this.byTgid) {
      // Older entries exited before newer ones: cut the chain at the first expired one.
      let prev: ProcessEntry | undefined;
      for (let e: ProcessEntry | undefined = head; e !== undefined; prev = e, e = e.older) {
        if (!expired(e)) continue;
        for (let x: ProcessEntry | undefined = e; x !== undefined; x = x.older) dropped++;
        if (prev === undefined) this.byTgid.delete(tgid);
        else prev.older = undefined;
        break;
      }
    }
    this.count -= dropped;
    this.stats.evicted += dropped;
    return dropped;
  }

  private find(tgid: number, startNs: bigint, exact = false): ProcessEntry | undefined {
    const head = this.byTgid.get(tgid);
    if (head === undefined) return undefined;
    if (startNs === 0n) return exact ? undefined : head;
    // Kernel values match exactly; only /proc entries (tick precision) need the division.
    for (let e: ProcessEntry | undefined = head; e !== undefined; e = e.older) {
      if (e.startNs === startNs) return e;
    }
    const want = ticks(startNs);
    for (let e: ProcessEntry | undefined = head; e !== undefined; e = e.older) {
      if (ticks(e.startNs) === want) {
        // A /proc entry is at tick precision: take the kernel's exact value.
        if (e.startNs !== startNs && e.origin === "proc") e.startNs = startNs;
        return e;
      }
    }
    return undefined;
  }

  private fromProc(pid: number): ProcessEntry | undefined {
    this.stats.procReads++;
    const snap = readProc(pid, this.maxArgBytes, this.procRoot);
    if (snap === undefined || snap.tgid !== pid) return undefined;
    const known = this.find(snap.tgid, snap.startNs, true);
    if (known !== undefined) return known;
    const entry = this.entryFromSnapshot(snap);
    this.insert(entry);
    return entry;
  }

  private entryFromSnapshot(s: ProcSnapshot): ProcessEntry {
    const cgroupId = s.cgroupPath === "" ? 0n : (this.opts.cgroups?.idOf(s.cgroupPath) ?? 0n);
    return {
      tgid: s.tgid,
      ppid: s.ppid,
      comm: s.comm,
      binary: s.binary,
      args: s.args,
      argsTruncated: s.argsTruncated,
      uid: s.uid,
      gid: s.gid,
      euid: s.euid,
      egid: s.egid,
      cgroupId,
      cgroupPath: s.cgroupPath,
      startNs: s.startNs,
      nsPid: s.nsTgid,
      origin: "proc",
    };
  }

  private insert(entry: ProcessEntry): void {
    if (this.count >= this.maxEntries) this.makeRoom();
    const head = this.byTgid.get(entry.tgid);
    if (head !== undefined) {
      // A new process with this tgid: the previous one has exited even if its exit was missed.
      head.exitedAt ??= performance.now();
      entry.older = head;
    }
    this.byTgid.set(entry.tgid, entry);
    this.count++;
  }

  private makeRoom(): void {
    if (this.sweep() > 0 && this.count < this.maxEntries) return;
    // Still full: drop exited first, then the oldest inserted (Map order).
    let need = Math.max(1, Math.floor(this.maxEntries / 64));
    for (const pass of [true, false]) {
      for (const [tgid, head] of this.byTgid) {
        if (need === 0) return;
        if (pass && head.exitedAt === undefined && head.older === undefined) continue;
        this.byTgid.delete(tgid);
        let n = 0;
        for (let e: ProcessEntry | undefined = head; e !== undefined; e = e.older) n++;
        this.count -= n;
        this.stats.evicted += n;
        need -= Math.min(need, n);
      }
    }
  }
}
