import { readdirSync, readFileSync, statSync } from "node:fs";

/** Where the cgroup v2 hierarchy is mounted ("/sys/fs/cgroup" or "/sys/fs/cgroup/unified"), undefined without one. */
export function cgroup2Mount(mountinfo = "/proc/self/mountinfo"): string | undefined {
  let text: string;
  try {
    text = readFileSync(mountinfo, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0 || !line.slice(sep + 3).startsWith("cgroup2 ")) continue;
    const fields = line.slice(0, sep).split(" ");
    if (fields[3] === "/" && fields[4]) return fields[4];
  }
  return undefined;
}

/**
 * Maps cgroup v2 ids (the directory's inode number, what bpf_get_current_cgroup_id
 * returns) to paths relative to the hierarchy root, and back. Ids unknown on lookup
 * trigger one rescan of the hierarchy at most every `rescanMs`.
 */
export class CgroupPaths {
  private readonly byId = new Map<bigint, string>();
  private readonly byPath = new Map<string, bigint>();
  private lastScan = Number.NEGATIVE_INFINITY;
  /** Rescans of the hierarchy done (at start and on unknown ids). */
  scans = 0;

  constructor(
    readonly mount: string | undefined = cgroup2Mount(),
    private readonly rescanMs = 1000,
    private readonly maxDepth = 12,
  ) {}

  /** Path of cgroup `id`, "" when not found (also after a rescan). */
  pathOf(id: bigint): string {
    const hit = this.byId.get(id);
    if (hit !== undefined) return hit;
    if (id === 0n || this.mount === undefined) return "";
    const now = performance.now();
    if (now - this.lastScan < this.rescanMs) return "";
    this.scan();
    return this.byId.get(id) ?? "";
  }

  /** Id of cgroup `path` ("/a/b"), 0n when it does not exist. */
  idOf(path: string): bigint {
    const hit = this.byPath.get(path);
    if (hit !== undefined) return hit;
    if (this.mount === undefined) return 0n;
    try {
      const ino = BigInt(statSync(`${this.mount}${path === "/" ? "" : path}`).ino);
      this.remember(ino, path);
      return ino;
    } catch {
      return 0n;
    }
  }

  /** Records a pair learned elsewhere (a process' /proc/<pid>/cgroup). */
  remember(id: bigint, path: string): void {
    this.byId.set(id, path);
    this.byPath.set(path, id);
  }

  /** Walks the whole hierarchy, replacing what was known. */
  scan(): void {
    this.lastScan = performance.now();
    this.scans++;
    if (this.mount === undefined) return;
    this.byId.clear();
    this.byPath.clear();
    const walk = (rel: string, depth: number): void => {
      let ino: bigint;
      try {
        ino = BigInt(statSync(`${this.mount}${rel}`).ino);
      } catch {
        return;
      }
      this.remember(ino, rel === "" ? "/" : rel);
      if (depth >= this.maxDepth) return;
      let entries: import("node:fs").Dirent[];
      try {
        entries = readdirSync(`${this.mount}${rel}`, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) if (e.isDirectory()) walk(`${rel}/${e.name}`, depth + 1);
    };
    walk("", 0);
  }
}
