/**
 * Socket owners of connections older than the process program, from /proc: every
 * socket inode held open by a process (`/proc/<pid>/fd`), matched with the TCP
 * connections (established) and connected UDP sockets of its network namespace
 * (`/proc/<pid>/net/{tcp,tcp6,udp,udp6}`). Each becomes a socket-owner record with
 * source BACKFILL, so the enricher owning the flow learns its process like any other.
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { computeFlowHash, encodeSockOwnerRecord, SOCK_SOURCE } from "@periscope/wire";

/** A socket's holder as /proc shows it. */
interface Holder {
  readonly tgid: number;
  readonly uid: number;
  readonly comm: string;
  readonly startNs: bigint;
  readonly cgroupId: bigint;
}

/** One socket of /proc/<pid>/net/{tcp,udp}{,6}. */
export interface ProcNetSocket {
  readonly family: 4 | 6;
  readonly saddr: Uint8Array;
  readonly sport: number;
  readonly daddr: Uint8Array;
  readonly dport: number;
  /** TCP state (1 established, 10 listen), 7 for unconnected UDP. */
  readonly state: number;
  readonly inode: number;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const USER_HZ = 100n;

/** Address bytes (network order) from /proc/net's hex: each 32-bit word printed in host (little-endian) order. */
function hexAddr(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    for (let b = 0; b < 4; b++) {
      const at = w * 8 + (3 - b) * 2;
      out[w * 4 + b] = Number.parseInt(hex.slice(at, at + 2), 16);
    }
  }
  return out;
}

/** Parses the text of /proc/net/tcp, tcp6, udp or udp6 (header line first). */
export function parseProcNet(text: string, family: 4 | 6): ProcNetSocket[] {
  const out: ProcNetSocket[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [local, remote, st] = [f[1] ?? "", f[2] ?? "", f[3] ?? ""];
    const [la, lp] = local.split(":");
    const [ra, rp] = remote.split(":");
    if (la === undefined || lp === undefined || ra === undefined || rp === undefined) continue;
    out.push({
      family,
      saddr: hexAddr(la),
      sport: Number.parseInt(lp, 16),
      daddr: hexAddr(ra),
      dport: Number.parseInt(rp, 16),
      state: Number.parseInt(st, 16),
      inode: Number(f[9]),
    });
  }
  return out;
}

/** IPv4-mapped IPv6 addresses as IPv4 (the packets on the wire are IPv4). */
function unmap(s: ProcNetSocket): ProcNetSocket {
  const mapped = (a: Uint8Array) =>
    a.length === 16 && a.subarray(0, 10).every((b) => b === 0) && a[10] === 0xff && a[11] === 0xff;
  if (s.family !== 6 || !mapped(s.daddr) || !mapped(s.saddr)) return s;
  return { ...s, family: 4, saddr: s.saddr.slice(12), daddr: s.daddr.slice(12) };
}

function holderOf(procDir: string, pid: number, cgroupRoot: string | undefined): Holder {
  const status = readFileSync(join(procDir, String(pid), "status"), "utf8");
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  const tgid = Number(/^Tgid:\s+(\d+)/m.exec(status)?.[1] ?? pid);
  const comm = readFileSync(join(procDir, String(pid), "comm"), "utf8").trim();
  const stat = readFileSync(join(procDir, String(pid), "stat"), "utf8");
  // Fields after the command (which may hold spaces and parentheses): state is field 3.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const startNs = (BigInt(rest[19] ?? "0") * 1_000_000_000n) / USER_HZ;
  let cgroupId = 0n;
  if (cgroupRoot !== undefined) {
    const line = readFileSync(join(procDir, String(pid), "cgroup"), "utf8")
      .split("\n")
      .find((l) => l.startsWith("0::"));
    if (line !== undefined) cgroupId = BigInt(statSync(join(cgroupRoot, line.slice(3))).ino);
  }
  return { tgid, uid, comm, startNs, cgroupId };
}

/** Options of {@link backfillSocketOwners}. */
export interface BackfillOptions {
  /** /proc, or a copy for tests. */
  readonly procDir?: string;
  /** cgroup v2 root, for cgroup ids (0 without). */
  readonly cgroupRoot?: string;
  /** Cookie of the network namespace at `/proc/<pid>/ns/net`. */
  readonly netnsCookieOf: (pid: number) => bigint;
  /** CLOCK_BOOTTIME now, ns: the records' ts_boot_ns. */
  readonly nowBootNs: bigint;
}

/** What a backfill found. */
export interface BackfillResult {
  /** Encoded socket-owner records (source BACKFILL). */
  readonly records: Uint8Array[];
  /** Processes or namespaces that vanished or could not be read while scanning. */
  readonly skipped: number;
}

/**
 * Socket-owner records for the established TCP connections and connected UDP sockets
 * of every network namespace a process is in. A socket held by several processes is
 * reported for the first one found (lowest pid).
 */
export function backfillSocketOwners(o: BackfillOptions): BackfillResult {
  const procDir = o.procDir ?? "/proc";
  const pids = readdirSync(procDir)
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .sort((a, b) => a - b);
  const holders = new Map<number, number>(); // socket inode -> pid
  const netnsPid = new Map<string, number>(); // netns link -> first pid in it
  let skipped = 0;
  for (const pid of pids) {
    try {
      const ns = readlinkSync(join(procDir, String(pid), "ns", "net"));
      if (!netnsPid.has(ns)) netnsPid.set(ns, pid);
      for (const fd of readdirSync(join(procDir, String(pid), "fd"))) {
        let link: string;
        try {
          link = readlinkSync(join(procDir, String(pid), "fd", fd));
        } catch {
          continue; // closed meanwhile
        }
        const m = /^socket:\[(\d+)\]$/.exec(link);
        if (m && !holders.has(Number(m[1]))) holders.set(Number(m[1]), pid);
      }
    } catch {
      skipped++;
    }
  }
  const records: Uint8Array[] = [];
  const cache = new Map<number, Holder | undefined>();
  for (const pid of netnsPid.values()) {
    let cookie: bigint;
    const sockets: (ProcNetSocket & { proto: number })[] = [];
    try {
      cookie = o.netnsCookieOf(pid);
      for (const [file, family, proto] of [
        ["tcp", 4, 6],
        ["tcp6", 6, 6],
        ["udp", 4, 17],
        ["udp6", 6, 17],
      ] as const) {
        let text: string;
        try {
          text = readFileSync(join(procDir, String(pid), "net", file), "utf8");
        } catch {
          continue; // no IPv6 in this namespace
        }
        for (const s of parseProcNet(text, family)) sockets.push({ ...s, proto });
      }
    } catch {
      skipped++;
      continue;
    }
    for (const raw of sockets) {
      const connected = raw.proto === 6 ? raw.state === 1 : raw.dport !== 0;
      const holder = holders.get(raw.inode);
      if (!connected || raw.inode === 0 || holder === undefined) continue;
      if (!cache.has(holder)) {
        try {
          cache.set(holder, holderOf(procDir, holder, o.cgroupRoot));
        } catch {
          cache.set(holder, undefined);
          skipped++;
        }
      }
      const h = cache.get(holder);
      if (h === undefined) continue;
      const s = unmap(raw);
      records.push(
        encodeSockOwnerRecord({
          source: SOCK_SOURCE.BACKFILL,
          cpu: 0,
          tsBootNs: o.nowBootNs,
          pid: h.tgid,
          tgid: h.tgid,
          flowHash: computeFlowHash(s.saddr, s.sport, s.daddr, s.dport, raw.proto),
          family: s.family,
          proto: raw.proto,
          netnsCookie: cookie,
          saddr: s.saddr,
          daddr: s.daddr,
          sport: s.sport,
          dport: s.dport,
          uid: h.uid,
          sockCookie: 0n,
          cgroupId: h.cgroupId,
          startNs: h.startNs,
          comm: h.comm,
        }),
      );
    }
  }
  return { records, skipped };
}
