/**
 * Process records of bpf/proc.bpf.c: `struct pscope_proc` (exec, fork, exit) and
 * `struct pscope_sock_owner` (which process owns a connection's socket). Offsets
 * are checked against the BTF of proc.bpf.o by proc.test.ts.
 */
import { HDR_LAYOUT, HDR_SIZE } from "./header.ts";
import type { StructLayout } from "./layout.ts";
import { checkRecord, MalformedRecordError, type RecordSpec } from "./record.ts";

/** Header flag `PSCOPE_F_TRUNCATED` (layout.ts imports this module, so not from there). */
const FLAG_TRUNCATED = 0x01;

/** Record type of process lifecycle records (`PSCOPE_REC_PROC`). */
export const RECORD_TYPE_PROC = 140;
/** Record type of socket-owner records (`PSCOPE_REC_SOCK_OWNER`). */
export const RECORD_TYPE_SOCK_OWNER = 141;
/** Format version of process records (`PSCOPE_PROC_VERSION`). */
export const PROC_VERSION = 1;
/** Format version of socket-owner records (`PSCOPE_SOCK_OWNER_VERSION`). */
export const SOCK_OWNER_VERSION = 1;
/** Process record kinds (`PSCOPE_PROC_*`, the record's subtype). */
export const PROC_EVENT = { EXEC: 1, FORK: 2, EXIT: 3 } as const;
/** A {@link PROC_EVENT} value. */
export type ProcEvent = (typeof PROC_EVENT)[keyof typeof PROC_EVENT];
/** Binary path bytes an exec record carries at most (`PSCOPE_PROC_MAX_PATH`). */
export const PROC_MAX_PATH = 256;
/** Argument bytes an exec record carries at most (`PSCOPE_PROC_MAX_ARGS`). */
export const PROC_MAX_ARGS = 4096;
/** How a socket's owner was learned (`PSCOPE_SOCK_*`, the record's subtype). */
export const SOCK_SOURCE = { TCP_CONNECT: 1, TCP_ACCEPT: 2, UDP: 3, BACKFILL: 4 } as const;

/** Size of the fixed part of a process record; `cap_len` bytes of path and arguments follow. */
export const PROC_FIXED_SIZE = 104;
/** Size of a socket-owner record (no variable part). */
export const SOCK_OWNER_SIZE = 128;

/** `struct pscope_proc`: `size` is the C struct's, a sample is `PROC_FIXED_SIZE + cap_len` bytes. */
export const PROC_LAYOUT = {
  size: PROC_FIXED_SIZE + PROC_MAX_PATH + PROC_MAX_ARGS,
  fixedSize: PROC_FIXED_SIZE,
  fields: {
    hdr: { offset: 0, size: HDR_SIZE },
    ts_boot_ns: { offset: 16, size: 8 },
    pid: { offset: 24, size: 4 },
    tgid: { offset: 28, size: 4 },
    ppid: { offset: 32, size: 4 },
    uid: { offset: 36, size: 4 },
    gid: { offset: 40, size: 4 },
    euid: { offset: 44, size: 4 },
    egid: { offset: 48, size: 4 },
    exit_code: { offset: 52, size: 4 },
    cgroup_id: { offset: 56, size: 8 },
    start_ns: { offset: 64, size: 8 },
    parent_start_ns: { offset: 72, size: 8 },
    comm: { offset: 80, size: 16 },
    path_len: { offset: 96, size: 2 },
    args_len: { offset: 98, size: 2 },
    ns_tgid: { offset: 100, size: 4 },
    data: { offset: PROC_FIXED_SIZE, size: PROC_MAX_PATH + PROC_MAX_ARGS },
  },
} as const satisfies StructLayout;

/** `struct pscope_sock_owner`: flow_hash at 32 and netns_cookie at 40, like trace records. */
export const SOCK_OWNER_LAYOUT = {
  size: SOCK_OWNER_SIZE,
  fields: {
    hdr: { offset: 0, size: HDR_SIZE },
    ts_boot_ns: { offset: 16, size: 8 },
    pid: { offset: 24, size: 4 },
    tgid: { offset: 28, size: 4 },
    flow_hash: { offset: 32, size: 4 },
    family: { offset: 36, size: 1 },
    proto: { offset: 37, size: 1 },
    _pad0: { offset: 38, size: 2 },
    netns_cookie: { offset: 40, size: 8 },
    saddr: { offset: 48, size: 16 },
    daddr: { offset: 64, size: 16 },
    sport: { offset: 80, size: 2 },
    dport: { offset: 82, size: 2 },
    uid: { offset: 84, size: 4 },
    sock_cookie: { offset: 88, size: 8 },
    cgroup_id: { offset: 96, size: 8 },
    start_ns: { offset: 104, size: 8 },
    comm: { offset: 112, size: 16 },
  },
} as const satisfies StructLayout;

/** Offsets of proc.bpf.o's `.rodata` globals, written before load. */
export const PROC_RODATA = {
  /** Argument bytes copied per exec, 0..PROC_MAX_ARGS. */
  max_args: { offset: 0, size: 4 },
} as const;

/** The constants above by their C names, merged into HEADER_CONSTANTS. */
export const PROC_CONSTANTS: Readonly<Record<string, number>> = {
  PSCOPE_REC_PROC: RECORD_TYPE_PROC,
  PSCOPE_REC_SOCK_OWNER: RECORD_TYPE_SOCK_OWNER,
  PSCOPE_PROC_VERSION: PROC_VERSION,
  PSCOPE_SOCK_OWNER_VERSION: SOCK_OWNER_VERSION,
  ...Object.fromEntries(Object.entries(PROC_EVENT).map(([k, v]) => [`PSCOPE_PROC_${k}`, v])),
  PSCOPE_PROC_MAX_PATH: PROC_MAX_PATH,
  PSCOPE_PROC_MAX_ARGS: PROC_MAX_ARGS,
  ...Object.fromEntries(Object.entries(SOCK_SOURCE).map(([k, v]) => [`PSCOPE_SOCK_${k}`, v])),
};

/** A decoded `struct pscope_proc`. */
export interface ProcRecord {
  /** `PROC_EVENT.EXEC`, `FORK` or `EXIT`. */
  event: number;
  /** CPU that produced the record. */
  cpu: number;
  /** bpf_ktime_get_boot_ns() when the event happened. */
  tsBootNs: bigint;
  /** Thread id (the kernel's pid). */
  pid: number;
  /** Process id (thread group). */
  tgid: number;
  /** Parent process id. */
  ppid: number;
  /**
   * Process id in the task's own pid namespace (a container's pid; equals `tgid` outside
   * one). Exec and fork records are of a process's only thread, so it is also its pid.
   */
  nsTgid: number;
  uid: number;
  gid: number;
  euid: number;
  egid: number;
  /** Exit: wait status (`code << 8 | signal`); 0 for exec and fork. */
  exitStatus: number;
  /** cgroup v2 id. */
  cgroupId: bigint;
  /** Process start, boot-time ns (with tgid, a key that survives pid reuse). */
  startNs: bigint;
  /** Parent's start, boot-time ns. */
  parentStartNs: bigint;
  /** Task command name (up to 15 bytes). */
  comm: string;
  /** Exec: binary path as given to execve (relative paths stay relative); else "". */
  binary: string;
  /** Exec: the first arguments (argv[0] first); else empty. */
  args: string[];
  /** Exec: argument bytes the process had (NULs included). */
  argsBytes: number;
  /** Exec: fewer argument bytes were copied than the process had. */
  truncated: boolean;
}

/** A decoded `struct pscope_sock_owner`. */
export interface SockOwnerRecord {
  /** How the owner was learned: `SOCK_SOURCE.*`. */
  source: number;
  cpu: number;
  tsBootNs: bigint;
  pid: number;
  tgid: number;
  /** The flow's symmetric hash (the partition key of its records). */
  flowHash: number;
  /** 4 or 6. */
  family: number;
  /** IPPROTO_TCP (6) or IPPROTO_UDP (17). */
  proto: number;
  netnsCookie: bigint;
  /** The socket's own address, 4 or 16 bytes, network order. */
  saddr: Uint8Array;
  /** The peer's address. */
  daddr: Uint8Array;
  sport: number;
  dport: number;
  uid: number;
  sockCookie: bigint;
  cgroupId: bigint;
  startNs: bigint;
  comm: string;
}

const PROC_SPEC: RecordSpec = {
  name: "process",
  type: RECORD_TYPE_PROC,
  version: PROC_VERSION,
  fixedSize: PROC_FIXED_SIZE,
  maxCapLen: PROC_MAX_PATH + PROC_MAX_ARGS,
};

const SOCK_OWNER_SPEC: RecordSpec = {
  name: "socket owner",
  type: RECORD_TYPE_SOCK_OWNER,
  version: SOCK_OWNER_VERSION,
  fixedSize: SOCK_OWNER_SIZE,
  sized: true,
};

const utf8 = new TextDecoder("utf-8", { fatal: false });
const encoder = new TextEncoder();

/** Text up to the first NUL (or the end). */
function cStr(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return utf8.decode(nul < 0 ? bytes : bytes.subarray(0, nul));
}

/** NUL-separated strings; a last one without NUL (cut short) is kept. */
function splitArgs(bytes: Uint8Array): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0) {
      out.push(utf8.decode(bytes.subarray(start, i)));
      start = i + 1;
    }
  }
  if (start < bytes.length) out.push(utf8.decode(bytes.subarray(start)));
  return out;
}

/**
 * Decodes one process record (`104 + cap_len` bytes).
 * @throws MalformedRecordError naming the failed check (length, type, version, cap_len,
 *   or path/argument lengths that do not add up to cap_len, reason "cap_len_beyond_sample").
 */
export function decodeProcRecord(bytes: Uint8Array): ProcRecord {
  const rec = checkRecord(bytes, PROC_SPEC);
  const v = rec.view;
  const f = PROC_LAYOUT.fields;
  const pathLen = v.getUint16(f.path_len.offset, true);
  const argsLen = v.getUint16(f.args_len.offset, true);
  if (pathLen + argsLen !== rec.capLen) {
    rejectLengths(pathLen, argsLen, rec.capLen);
  }
  const data = bytes.subarray(PROC_FIXED_SIZE, PROC_FIXED_SIZE + rec.capLen);
  return {
    event: bytes[HDR_LAYOUT.fields.subtype.offset] ?? 0,
    cpu: v.getUint32(HDR_LAYOUT.fields.source.offset, true),
    tsBootNs: v.getBigUint64(f.ts_boot_ns.offset, true),
    pid: v.getUint32(f.pid.offset, true),
    tgid: v.getUint32(f.tgid.offset, true),
    ppid: v.getUint32(f.ppid.offset, true),
    nsTgid: v.getUint32(f.ns_tgid.offset, true),
    uid: v.getUint32(f.uid.offset, true),
    gid: v.getUint32(f.gid.offset, true),
    euid: v.getUint32(f.euid.offset, true),
    egid: v.getUint32(f.egid.offset, true),
    exitStatus: v.getUint32(f.exit_code.offset, true),
    cgroupId: v.getBigUint64(f.cgroup_id.offset, true),
    startNs: v.getBigUint64(f.start_ns.offset, true),
    parentStartNs: v.getBigUint64(f.parent_start_ns.offset, true),
    comm: cStr(bytes.subarray(f.comm.offset, f.comm.offset + f.comm.size)),
    binary: cStr(data.subarray(0, pathLen)),
    args: splitArgs(data.subarray(pathLen)),
    argsBytes: v.getUint32(HDR_LAYOUT.fields.orig_len.offset, true),
    truncated: ((bytes[HDR_LAYOUT.fields.flags.offset] ?? 0) & FLAG_TRUNCATED) !== 0,
  };
}

function rejectLengths(pathLen: number, argsLen: number, capLen: number): never {
  throw new MalformedRecordError(
    "cap_len_beyond_sample",
    `process record path_len ${pathLen} + args_len ${argsLen} != cap_len ${capLen}`,
  );
}

/**
 * Decodes one socket-owner record (exactly 128 bytes).
 * @throws MalformedRecordError naming the failed check.
 */
export function decodeSockOwnerRecord(bytes: Uint8Array): SockOwnerRecord {
  const rec = checkRecord(bytes, SOCK_OWNER_SPEC);
  const v = rec.view;
  const f = SOCK_OWNER_LAYOUT.fields;
  const family = bytes[f.family.offset] ?? 0;
  const alen = family === 6 ? 16 : 4;
  return {
    source: bytes[HDR_LAYOUT.fields.subtype.offset] ?? 0,
    cpu: v.getUint32(HDR_LAYOUT.fields.source.offset, true),
    tsBootNs: v.getBigUint64(f.ts_boot_ns.offset, true),
    pid: v.getUint32(f.pid.offset, true),
    tgid: v.getUint32(f.tgid.offset, true),
    flowHash: v.getUint32(f.flow_hash.offset, true),
    family,
    proto: bytes[f.proto.offset] ?? 0,
    netnsCookie: v.getBigUint64(f.netns_cookie.offset, true),
    saddr: bytes.slice(f.saddr.offset, f.saddr.offset + alen),
    daddr: bytes.slice(f.daddr.offset, f.daddr.offset + alen),
    sport: v.getUint16(f.sport.offset, true),
    dport: v.getUint16(f.dport.offset, true),
    uid: v.getUint32(f.uid.offset, true),
    sockCookie: v.getBigUint64(f.sock_cookie.offset, true),
    cgroupId: v.getBigUint64(f.cgroup_id.offset, true),
    startNs: v.getBigUint64(f.start_ns.offset, true),
    comm: cStr(bytes.subarray(f.comm.offset, f.comm.offset + f.comm.size)),
  };
}

function writeHeader(v: DataView, type: number, subtype: number, version: number, cpu: number) {
  const h = HDR_LAYOUT.fields;
  v.setUint8(h.type.offset, type);
  v.setUint8(h.subtype.offset, subtype);
  v.setUint8(h.version.offset, version);
  v.setUint32(h.source.offset, cpu, true);
}

function writeComm(bytes: Uint8Array, offset: number, comm: string): void {
  bytes.set(encoder.encode(comm).subarray(0, 15), offset);
}

/**
 * A process record to encode; `binary` and `args` are written for exec only; `nsTgid`
 * defaults to `tgid` (a process outside any container).
 */
export type ProcRecordInit = Omit<ProcRecord, "argsBytes" | "truncated" | "nsTgid"> & {
  argsBytes?: number;
  truncated?: boolean;
  nsTgid?: number;
};

/**
 * Encodes a process record as the kernel writes it, for tests, benchmarks and the
 * collector's /proc backfill. Path and arguments are cut to the kernel's limits.
 */
export function encodeProcRecord(rec: ProcRecordInit): Uint8Array {
  const path =
    rec.event === PROC_EVENT.EXEC
      ? encoder.encode(`${rec.binary}\0`).subarray(0, PROC_MAX_PATH)
      : new Uint8Array(0);
  const argsAll =
    rec.event === PROC_EVENT.EXEC && rec.args.length > 0
      ? encoder.encode(`${rec.args.join("\0")}\0`)
      : new Uint8Array(0);
  const args = argsAll.subarray(0, PROC_MAX_ARGS);
  const capLen = path.length + args.length;
  const bytes = new Uint8Array(PROC_FIXED_SIZE + capLen);
  const v = new DataView(bytes.buffer);
  const f = PROC_LAYOUT.fields;
  writeHeader(v, RECORD_TYPE_PROC, rec.event, PROC_VERSION, rec.cpu);
  const truncated = rec.truncated ?? args.length < argsAll.length;
  v.setUint8(HDR_LAYOUT.fields.flags.offset, truncated ? FLAG_TRUNCATED : 0);
  v.setUint32(HDR_LAYOUT.fields.orig_len.offset, rec.argsBytes ?? argsAll.length, true);
  v.setUint32(HDR_LAYOUT.fields.cap_len.offset, capLen, true);
  v.setBigUint64(f.ts_boot_ns.offset, rec.tsBootNs, true);
  v.setUint32(f.pid.offset, rec.pid, true);
  v.setUint32(f.tgid.offset, rec.tgid, true);
  v.setUint32(f.ppid.offset, rec.ppid, true);
  v.setUint32(f.ns_tgid.offset, rec.nsTgid ?? rec.tgid, true);
  v.setUint32(f.uid.offset, rec.uid, true);
  v.setUint32(f.gid.offset, rec.gid, true);
  v.setUint32(f.euid.offset, rec.euid, true);
  v.setUint32(f.egid.offset, rec.egid, true);
  v.setUint32(f.exit_code.offset, rec.exitStatus, true);
  v.setBigUint64(f.cgroup_id.offset, rec.cgroupId, true);
  v.setBigUint64(f.start_ns.offset, rec.startNs, true);
  v.setBigUint64(f.parent_start_ns.offset, rec.parentStartNs, true);
  writeComm(bytes, f.comm.offset, rec.comm);
  v.setUint16(f.path_len.offset, path.length, true);
  v.setUint16(f.args_len.offset, args.length, true);
  bytes.set(path, PROC_FIXED_SIZE);
  bytes.set(args, PROC_FIXED_SIZE + path.length);
  return bytes;
}

/**
 * Encodes a socket-owner record as the kernel writes it (128 bytes), for tests and
 * the collector's /proc backfill. Addresses are 4 or 16 bytes, network order.
 */
export function encodeSockOwnerRecord(rec: SockOwnerRecord): Uint8Array {
  const bytes = new Uint8Array(SOCK_OWNER_SIZE);
  const v = new DataView(bytes.buffer);
  const f = SOCK_OWNER_LAYOUT.fields;
  writeHeader(v, RECORD_TYPE_SOCK_OWNER, rec.source, SOCK_OWNER_VERSION, rec.cpu);
  v.setBigUint64(f.ts_boot_ns.offset, rec.tsBootNs, true);
  v.setUint32(f.pid.offset, rec.pid, true);
  v.setUint32(f.tgid.offset, rec.tgid, true);
  v.setUint32(f.flow_hash.offset, rec.flowHash, true);
  v.setUint8(f.family.offset, rec.family);
  v.setUint8(f.proto.offset, rec.proto);
  v.setBigUint64(f.netns_cookie.offset, rec.netnsCookie, true);
  bytes.set(rec.saddr.subarray(0, 16), f.saddr.offset);
  bytes.set(rec.daddr.subarray(0, 16), f.daddr.offset);
  v.setUint16(f.sport.offset, rec.sport, true);
  v.setUint16(f.dport.offset, rec.dport, true);
  v.setUint32(f.uid.offset, rec.uid, true);
  v.setBigUint64(f.sock_cookie.offset, rec.sockCookie, true);
  v.setBigUint64(f.cgroup_id.offset, rec.cgroupId, true);
  v.setBigUint64(f.start_ns.offset, rec.startNs, true);
  writeComm(bytes, f.comm.offset, rec.comm);
  return bytes;
}
