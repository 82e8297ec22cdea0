import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ; 100 on every Linux port in use). */
export const CLK_TCK = 100;
/** Nanoseconds in one USER_HZ tick. */
export const NS_PER_TICK = 1_000_000_000n / BigInt(CLK_TCK);

/** What `/proc/<pid>` says about one process (its thread group leader). */
export interface ProcSnapshot {
  pid: number;
  tgid: number;
  ppid: number;
  comm: string;
  /** `/proc/<pid>/exe`, "" when unreadable (kernel threads, exited, no permission). */
  binary: string;
  args: string[];
  /** The argument bytes went beyond the limit and were cut. */
  argsTruncated: boolean;
  uid: number;
  gid: number;
  euid: number;
  egid: number;
  /** cgroup v2 path ("/system.slice/foo.service"), "" when the process is in no v2 cgroup. */
  cgroupPath: string;
  /** Start, boot-time ns at tick precision (stat field 22 × 10 ms). */
  startNs: bigint;
  /** tgid in the process's own pid namespace (last NStgid value), 0 when absent. */
  nsTgid: number;
}

/** Reads a whole small /proc file, undefined when it is gone. */
export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return undefined;
  }
}

/** NUL-separated arguments, at most `limit` bytes; a cut argument is kept as far as it went. */
export function splitCmdline(raw: Buffer, limit: number): { args: string[]; truncated: boolean } {
  const truncated = raw.length > limit;
  const bytes = truncated ? raw.subarray(0, limit) : raw;
  const args: string[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0) {
      args.push(bytes.toString("utf8", start, i));
      start = i + 1;
    }
  }
  if (start < bytes.length) args.push(bytes.toString("utf8", start));
  return { args, truncated };
}

/** The v2 line ("0::<path>") of a `/proc/<pid>/cgroup` text, "" when absent. */
export function cgroupV2Path(text: string): string {
  for (const line of text.split("\n")) {
    if (line.startsWith("0::")) return line.slice(3);
  }
  return "";
}

/**
 * Reads `/proc/<pid>` (a thread id resolves to its thread group: the fields are the
 * process'). Undefined when the process is gone or the files do not parse.
 * @param maxArgBytes argument bytes kept from cmdline.
 */
export function readProc(
  pid: number,
  maxArgBytes = 1024,
  root = "/proc",
): ProcSnapshot | undefined {
  const dir = `${root}/${pid}`;
  const stat = readText(`${dir}/stat`);
  const status = readText(`${dir}/status`);
  if (stat === undefined || status === undefined) return undefined;
  // comm sits in parentheses and may itself hold ") ", so split at the last one.
  const open = stat.indexOf("(");
  const close = stat.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const comm = stat.slice(open + 1, close);
  const rest = stat.slice(close + 2).split(" ");
  // rest[0] is field 3 (state): field n is rest[n - 3].
  const ppid = Number(rest[1]);
  const startTicks = rest[19];
  if (startTicks === undefined || !/^\d+$/.test(startTicks)) return undefined;
  let tgid = pid;
  let nsTgid = 0;
  let uids = [0, 0];
  let gids = [0, 0];
  for (const line of status.split("\n")) {
    if (line.startsWith("Tgid:")) tgid = Number(line.slice(5).trim());
    else if (line.startsWith("NStgid:")) {
      const ids = line.slice(7).trim().split(/\s+/);
      nsTgid = Number(ids[ids.length - 1]) || 0;
    } else if (line.startsWith("Uid:")) uids = line.slice(4).trim().split(/\s+/).map(Number);
    else if (line.startsWith("Gid:")) gids = line.slice(4).trim().split(/\s+/).map(Number);
  }
  let binary = "";
  try {
    binary = readlinkSync(`${dir}/exe`);
  } catch {
    // kernel thread or gone: no executable
  }
  let cmdline: Buffer;
  try {
    cmdline = readFileSync(`${dir}/cmdline`);
  } catch {
    cmdline = Buffer.alloc(0);
  }
  const { args, truncated } = splitCmdline(cmdline, maxArgBytes);
  return {
    pid,
    tgid,
    ppid,
    comm,
    binary,
    args,
    argsTruncated: truncated,
    uid: uids[0] ?? 0,
    euid: uids[1] ?? 0,
    gid: gids[0] ?? 0,
    egid: gids[1] ?? 0,
    cgroupPath: cgroupV2Path(readText(`${dir}/cgroup`) ?? ""),
    startNs: BigInt(startTicks) * NS_PER_TICK,
    nsTgid,
  };
}

/** Thread group ids of every process in `/proc` right now. */
export function listPids(root = "/proc"): number[] {
  const out: number[] = [];
  for (const name of readdirSync(root)) {
    const c = name.charCodeAt(0);
    if (c >= 48 && c <= 57) out.push(Number(name));
  }
  return out;
}
