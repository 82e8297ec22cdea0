/**
 * The process program (bpf/proc.bpf.c): process exec/fork/exit from scheduler
 * tracepoints and socket ownership from cgroup hooks on the root of the cgroup v2
 * hierarchy, written into its own `proc_events` ring buffer.
 */
import { type Pointer, ptr } from "bun:ffi";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PROC_MAX_ARGS, PROC_RODATA } from "@periscope/wire";
import {
  checkRingBytes,
  loadObject,
  mapFdOf,
  openObject,
  rodataView,
  setMaxEntries,
  sumPerCpu,
} from "./bpf-object.ts";
import { BpfError, ERRNO } from "./errors.ts";
import { cString, isNull, lastErrno, libbpf, libc } from "./ffi.ts";
import { type RecordSink, RingBufferReader } from "./ring-buffer.ts";

/** Default object file: bpf/build/proc.bpf.o of this repository. */
export const DEFAULT_PROC_OBJECT = join(import.meta.dir, "..", "..", "bpf", "build", "proc.bpf.o");
/** Default size of the `proc_events` ring buffer, bytes. */
export const DEFAULT_PROC_RING_BYTES = 4 << 20;
/** Default argument bytes copied per exec. */
export const DEFAULT_MAX_ARGS = 1024;

/** Programs of proc.bpf.o and where they attach. */
const TRACEPOINTS = ["proc_exec", "proc_fork", "proc_exit"] as const;
const CGROUP_PROGRAMS = [
  "sock_tcp_ops",
  "sock_udp_create",
  "sock_udp_release",
  "sock_udp_egress",
  "sock_udp_ingress",
] as const;
/** Every program name of proc.bpf.o (leftover checks look for these). */
export const PROC_PROGRAM_NAMES: readonly string[] = [...TRACEPOINTS, ...CGROUP_PROGRAMS];

/** BPF_ANY for bpf_map_update_elem. */
const BPF_ANY = 0;

/**
 * A cookie no network namespace has (the kernel counts cookies up from 1): watching only
 * it reports no socket owners at all, e.g. while a collector has no attached device.
 */
export const NO_NETNS_COOKIE = 0xffff_ffff_ffff_ffffn;

/** Size of the kernel's watched_netns map. */
export const MAX_WATCHED_NETNS = 4096;

const O_RDONLY_DIRECTORY_CLOEXEC = 0o2000000 | 0o200000;

/** Counters of the program since load, summed over CPUs. */
export interface ProcCounters {
  /** Process records written into the ring buffer. */
  procEmitted: bigint;
  /** Process records lost: ring buffer full. */
  procLost: bigint;
  /** Socket-owner records written. */
  sockEmitted: bigint;
  /** Socket-owner records lost. */
  sockLost: bigint;
  /** Stored socket owners deleted when their socket closed. */
  sockExpired: bigint;
  /**
   * Socket-owner records not written: the socket's network namespace is not watched (for
   * UDP every such datagram counts: the per-flow dedupe only remembers written records).
   */
  sockFiltered: bigint;
}

/** Options for {@link ProcProgram.load}. */
export interface ProcLoadOptions {
  /** Path of proc.bpf.o; defaults to {@link DEFAULT_PROC_OBJECT}. */
  objectPath?: string;
  /** Argument bytes copied per exec, 0..PROC_MAX_ARGS; default 1024. */
  maxArgs?: number;
  /** Size of the ring buffer (power of two pages); default 4 MiB. */
  ringBytes?: number;
  /** Root of the cgroup v2 hierarchy; default: found in /proc/self/mounts. */
  cgroupRoot?: string;
  /** Load the socket-ownership hooks (default true). */
  sockets?: boolean;
  /** Network namespaces (cookies) to report socket owners of, set before the hooks attach. */
  netns?: Iterable<bigint>;
}

/** Mount point of the cgroup v2 hierarchy (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts). */
export function cgroupV2Root(mounts = readFileSync("/proc/self/mounts", "utf8")): string {
  for (const line of mounts.split("\n")) {
    const [, dir, type] = line.split(" ");
    if (type === "cgroup2" && dir !== undefined) return dir.replace(/\\040/g, " ");
  }
  throw new BpfError("find cgroup2 mount", ERRNO.ENOENT, "no cgroup2 file system is mounted");
}

/** @throws RangeError unless 0 <= n <= PROC_MAX_ARGS. */
export function checkMaxArgs(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > PROC_MAX_ARGS) {
    throw new RangeError(`max args must be an integer in 0..${PROC_MAX_ARGS} bytes, got ${n}`);
  }
  return n;
}

/**
 * proc.bpf.o loaded and attached. Close detaches every link and unloads it. One JS
 * thread only.
 */
export class ProcProgram {
  #obj: Pointer | null;
  readonly #links: Pointer[] = [];
  readonly #ring: RingBufferReader;
  readonly #statsFd: number;
  readonly #netnsFd: number;
  readonly #filterFd: number;
  /** Cookies in the kernel's watched_netns map. */
  readonly #watched = new Set<bigint>();
  /** Argument bytes copied per exec. */
  readonly maxArgs: number;
  /** Whether the socket-ownership hooks are attached. */
  readonly sockets: boolean;

  private constructor(obj: Pointer, ringBytes: number, maxArgs: number, sockets: boolean) {
    this.#obj = obj;
    this.#ring = new RingBufferReader(mapFdOf(obj, "proc_events"), ringBytes);
    this.#statsFd = mapFdOf(obj, "proc_stats");
    this.#netnsFd = mapFdOf(obj, "watched_netns");
    this.#filterFd = mapFdOf(obj, "proc_filter");
    this.maxArgs = maxArgs;
    this.sockets = sockets;
  }

  /**
   * Opens, configures, loads and attaches the program: the tracepoints, and (unless
   * `sockets` is false) the cgroup hooks on the cgroup v2 root.
   * @throws BpfError naming the failing call; RangeError for bad options.
   */
  static load(opts: ProcLoadOptions = {}): ProcProgram {
    const maxArgs = checkMaxArgs(opts.maxArgs ?? DEFAULT_MAX_ARGS);
    const ringBytes = checkRingBytes(opts.ringBytes ?? DEFAULT_PROC_RING_BYTES);
    const sockets = opts.sockets !== false;
    const path = opts.objectPath ?? DEFAULT_PROC_OBJECT;
    const obj = openObject(path);
    let self: ProcProgram | undefined;
    let cgFd = -1;
    try {
      const view = rodataView(obj, PROC_RODATA.max_args.size, "max_args");
      view.setUint32(PROC_RODATA.max_args.offset, maxArgs, true);
      setMaxEntries(obj, "proc_events", ringBytes);
      if (!sockets) {
        for (const name of CGROUP_PROGRAMS) setAutoload(obj, name, false);
      }
      loadObject(obj, path);
      self = new ProcProgram(obj, ringBytes, maxArgs, sockets);
      if (opts.netns !== undefined) self.watchNetns(opts.netns);
      for (const name of TRACEPOINTS) {
        const link = libbpf().bpf_program__attach(program(obj, name));
        if (isNull(link)) throw new BpfError(`bpf_program__attach(${name})`, lastErrno());
        self.#links.push(link);
      }
      if (sockets) {
        const root = opts.cgroupRoot ?? cgroupV2Root();
        cgFd = libc().open(cString(root), O_RDONLY_DIRECTORY_CLOEXEC);
        if (cgFd < 0) throw new BpfError(`open(${root})`, lastErrno());
        for (const name of CGROUP_PROGRAMS) {
          const link = libbpf().bpf_program__attach_cgroup(program(obj, name), cgFd);
          if (isNull(link)) {
            throw new BpfError(`bpf_program__attach_cgroup(${name}, ${root})`, lastErrno());
          }
          self.#links.push(link);
        }
      }
      return self;
    } catch (err) {
      if (self !== undefined) self.close();
      else libbpf().bpf_object__close(obj);
      throw err;
    } finally {
      if (cgFd >= 0) libc().close(cgFd);
    }
  }

  /** Hands up to `max` waiting records to `sink` (views of the ring: copy what you keep). */
  drainInto(sink: RecordSink, max = Number.POSITIVE_INFINITY): number {
    if (this.#obj === null) return 0;
    return this.#ring.drainInto(sink, max);
  }

  /** Bytes waiting in the ring buffer. */
  get pending(): number {
    return this.#obj === null ? 0 : this.#ring.pending;
  }

  /** Records written and lost by the kernel side since load. */
  counters(): ProcCounters {
    if (this.#obj === null) throw new BpfError("counters", ERRNO.EBADF, "proc program is closed");
    const sum = (key: number): bigint => sumPerCpu(this.#statsFd, "proc_stats", key);
    return {
      procEmitted: sum(0),
      procLost: sum(1),
      sockEmitted: sum(2),
      sockLost: sum(3),
      sockExpired: sum(4),
      sockFiltered: sum(5),
    };
  }

  /** Network namespace cookies whose socket owners are reported (empty: every namespace). */
  watchedNetns(): ReadonlySet<bigint> {
    return new Set(this.#watched);
  }

  /**
   * Reports socket owners only for sockets in these network namespaces (by cookie); an
   * empty set reports every namespace. Lifecycle records are not filtered. Entries are
   * added before the count is raised and removed after it is lowered, so the kernel never
   * filters on a partly written set.
   * @throws BpfError naming the map update that failed; RangeError beyond 4096 namespaces.
   */
  watchNetns(cookies: Iterable<bigint>): void {
    if (this.#obj === null) throw new BpfError("watchNetns", ERRNO.EBADF, "proc program is closed");
    const want = new Set([...cookies].filter((c) => c !== 0n));
    if (want.size > MAX_WATCHED_NETNS) {
      throw new RangeError(`at most ${MAX_WATCHED_NETNS} watched namespaces, got ${want.size}`);
    }
    const key = new BigUint64Array(1);
    const one = new Uint8Array(1);
    for (const c of want) {
      if (this.#watched.has(c)) continue;
      key[0] = c;
      const rc = libbpf().bpf_map_update_elem(this.#netnsFd, ptr(key), ptr(one), BPF_ANY);
      if (rc < 0) throw new BpfError("bpf_map_update_elem(watched_netns)", -rc);
      this.#watched.add(c);
    }
    const gone = [...this.#watched].filter((c) => !want.has(c));
    this.#setFilterCount(want.size);
    for (const c of gone) {
      key[0] = c;
      const rc = libbpf().bpf_map_delete_elem(this.#netnsFd, ptr(key));
      if (rc < 0 && -rc !== ERRNO.ENOENT) {
        throw new BpfError("bpf_map_delete_elem(watched_netns)", -rc);
      }
      this.#watched.delete(c);
    }
  }

  #setFilterCount(n: number): void {
    const key = new Uint32Array([0]);
    const value = new Uint32Array([n]);
    const rc = libbpf().bpf_map_update_elem(this.#filterFd, ptr(key), ptr(value), BPF_ANY);
    if (rc < 0) throw new BpfError("bpf_map_update_elem(proc_filter)", -rc);
  }

  /** Detaches every hook and unloads the program. Safe to call again. */
  close(): void {
    for (const link of this.#links.splice(0)) libbpf().bpf_link__destroy(link);
    if (this.#obj !== null) {
      this.#ring.close();
      libbpf().bpf_object__close(this.#obj);
      this.#obj = null;
    }
  }
}

function program(obj: Pointer, name: string): Pointer {
  const prog = libbpf().bpf_object__find_program_by_name(obj, cString(name));
  if (isNull(prog)) throw new BpfError(`find program ${name}`, ERRNO.ENOENT);
  return prog;
}

function setAutoload(obj: Pointer, name: string, on: boolean): void {
  const rc = libbpf().bpf_program__set_autoload(program(obj, name), on);
  if (rc < 0) throw new BpfError(`bpf_program__set_autoload(${name})`, -rc);
}

const CLONE_NEWNET = 0x40000000;
const SO_NETNS_COOKIE = 71;

/**
 * Cookie of the network namespace process `pid` is in (the netns_cookie of records):
 * the calling thread enters `/proc/<pid>/ns/net` for one socket and comes back.
 * @throws BpfError naming the call that failed (the process may have exited).
 */
export function netnsCookieOfPid(pid: number, procDir = "/proc"): bigint {
  const open = (path: string): number => {
    const fd = libc().open(cString(path), 0o2000000);
    if (fd < 0) throw new BpfError(`open(${path})`, lastErrno());
    return fd;
  };
  const original = open("/proc/thread-self/ns/net");
  try {
    const target = open(`${procDir}/${pid}/ns/net`);
    try {
      if (libc().setns(target, CLONE_NEWNET) !== 0) {
        throw new BpfError(`setns(${procDir}/${pid}/ns/net)`, lastErrno());
      }
    } finally {
      libc().close(target);
    }
    try {
      const fd = libc().socket(1, 2 | 0o2000000, 0); // AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC
      if (fd < 0) throw new BpfError("socket(AF_UNIX)", lastErrno());
      try {
        const value = new BigUint64Array(1);
        const len = new Uint32Array([8]);
        const rc = libc().getsockopt(fd, 1, SO_NETNS_COOKIE, ptr(value), ptr(len));
        if (rc !== 0) throw new BpfError("getsockopt(SO_NETNS_COOKIE)", lastErrno());
        return value[0] ?? 0n;
      } finally {
        libc().close(fd);
      }
    } finally {
      if (libc().setns(original, CLONE_NEWNET) !== 0) {
        // This thread would stay in the wrong namespace; nothing safe can follow.
        console.error(new BpfError("setns(restore original netns)", lastErrno()));
        process.abort();
      }
    }
  } finally {
    libc().close(original);
  }
}
