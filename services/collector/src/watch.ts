/**
 * Change-driven discovery: /run/netns is watched (inotify) for namespaces appearing and
 * going, and every namespace the patterns look into has an rtnetlink socket subscribed to
 * link changes (LinkWatcher from @periscope/bpf). Notifications go straight to the
 * attacher; the collector's periodic full rescan is only a safety net.
 */
import { existsSync } from "node:fs";
import { constants } from "node:os";
import { basename, dirname, join } from "node:path";
import {
  BpfError,
  type DirChange,
  DirWatcher,
  FdPoller,
  LinkWatcher,
  NETNS_RUN_DIR,
} from "@periscope/bpf";
import type { Logger } from "@periscope/telemetry";
import type { InterfaceAttacher } from "./attacher.ts";
import type { CollectorMetrics } from "./metrics.ts";

/** First pause before entering a namespace file again that is not mounted yet, ms (doubles). */
const MOUNT_RETRY_FIRST_MS = 5;
/** Attempts to enter a new namespace file before leaving it to the periodic rescan. */
const MOUNT_RETRY_ATTEMPTS = 10;

/** Parts of the watch. */
export interface DeviceWatchOptions {
  readonly attacher: InterfaceAttacher;
  readonly metrics: CollectorMetrics;
  readonly log: Logger;
  /** Directory of named namespaces (default /run/netns). */
  readonly netnsDir?: string;
}

/**
 * Keeps one link socket per namespace the patterns look into and turns notifications
 * into attaches and detaches. A namespace file that appears before `ip netns add` has
 * mounted it is tried again with a short backoff; one that goes is forgotten at once
 * (its socket closed, so the kernel can free the namespace).
 */
export class DeviceWatch {
  readonly #opts: DeviceWatchOptions;
  readonly #dir: string;
  readonly #poller: FdPoller;
  readonly #links: LinkWatcher;
  #dirWatch: DirWatcher | undefined;
  /** True while only the parent is watched, waiting for the namespace directory to appear. */
  #watchingParent = false;
  readonly #retries = new Map<string, ReturnType<typeof setTimeout>>();
  #closed = false;

  /** Creates the link watcher and starts watching; throws BpfError when epoll is unavailable. */
  constructor(opts: DeviceWatchOptions) {
    this.#opts = opts;
    this.#dir = opts.netnsDir ?? NETNS_RUN_DIR;
    this.#poller = new FdPoller((err) => {
      opts.metrics.error("netlink");
      opts.log.error({ err }, "waiting for device notifications failed");
    });
    this.#links = new LinkWatcher(
      {
        onChanges: (netns, changes) => opts.attacher.applyChanges(netns, changes),
        onOverrun: (netns) => {
          opts.metrics.error("netlink_overrun");
          opts.log.warn(
            { netns },
            "device notifications were dropped; listing the namespace again",
          );
          this.#scanScope(netns);
        },
        onError: (err, netns) => {
          opts.metrics.error("netlink");
          opts.log.error({ err, netns }, "reading device notifications failed");
        },
      },
      this.#poller,
    );
    this.#watchDir();
    this.syncWatches();
  }

  /** Namespaces with a link socket ("" = own). */
  watching(): string[] {
    return this.#links.watching();
  }

  /**
   * Opens sockets for scopes the patterns name that have none and closes those of
   * namespaces that are gone. Returns how many it had to open or close (0 when the
   * notifications kept up).
   */
  syncWatches(): number {
    if (this.#closed) return 0;
    let fixed = 0;
    const scopes = this.#opts.attacher.scopes();
    for (const scope of scopes) {
      if (this.#links.has(scope) || this.#retries.has(scope)) continue;
      if (scope !== "" && !existsSync(join(this.#dir, scope))) continue;
      if (this.#tryWatch(scope)) fixed++;
    }
    for (const scope of this.#links.watching()) {
      if (scopes.has(scope)) continue;
      this.#links.unwatch(scope);
      this.#opts.attacher.forgetScope(scope);
      fixed++;
    }
    if (this.#dirWatch === undefined || this.#watchingParent) this.#watchDir();
    return fixed;
  }

  /** Stops watching and closes every socket. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#dirWatch?.close();
    for (const t of this.#retries.values()) clearTimeout(t);
    this.#retries.clear();
    await this.#links.close();
    await this.#poller.close();
  }

  /** Watches the namespace directory, or its parent until it exists. */
  #watchDir(): void {
    this.#dirWatch?.close();
    this.#dirWatch = undefined;
    const parent = !existsSync(this.#dir);
    const target = parent ? dirname(this.#dir) : this.#dir;
    try {
      this.#dirWatch = new DirWatcher(target, this.#poller, (changes) =>
        parent ? this.#parentChanges(changes) : this.#dirChanges(changes),
      );
      this.#watchingParent = parent;
    } catch (err) {
      this.#opts.metrics.error("netns_watch");
      this.#opts.log.error({ err, dir: target }, "cannot watch namespaces; relying on rescans");
    }
  }

  #parentChanges(changes: DirChange[]): void {
    const name = basename(this.#dir);
    if (changes.some((c) => c.kind !== "removed" && (!("name" in c) || c.name === name))) {
      if (existsSync(this.#dir)) {
        this.#watchDir();
        this.syncWatches();
      }
    }
  }

  #dirChanges(changes: DirChange[]): void {
    for (const c of changes) {
      if (c.kind === "added" || c.kind === "removed") this.#netnsEvent(c.name);
      else {
        // Events lost or the directory itself removed: look at everything again.
        if (c.kind === "gone") this.#watchDir();
        this.syncWatches();
      }
    }
  }

  #netnsEvent(name: string): void {
    if (this.#closed || !this.#opts.attacher.covers(name)) return;
    if (existsSync(join(this.#dir, name))) {
      if (!this.#links.has(name) && !this.#retries.has(name)) this.#tryWatch(name);
      return;
    }
    const t = this.#retries.get(name);
    if (t !== undefined) clearTimeout(t);
    this.#retries.delete(name);
    this.#links.unwatch(name);
    this.#opts.attacher.forgetScope(name);
  }

  /** Opens the socket and lists the namespace; retries while the file is not mounted yet. */
  #tryWatch(scope: string, attempt = 0): boolean {
    this.#retries.delete(scope);
    if (this.#closed) return false;
    try {
      this.#links.watch(scope);
    } catch (err) {
      const notMounted = err instanceof BpfError && err.errno === constants.errno.EINVAL;
      const stillThere = scope === "" || existsSync(join(this.#dir, scope));
      if (notMounted && stillThere && attempt < MOUNT_RETRY_ATTEMPTS) {
        const wait = MOUNT_RETRY_FIRST_MS * 2 ** attempt;
        this.#retries.set(
          scope,
          setTimeout(() => this.#tryWatch(scope, attempt + 1), wait),
        );
      } else if (stillThere) {
        this.#opts.metrics.error("netlink");
        this.#opts.log.warn({ err, netns: scope }, "cannot watch the namespace's devices");
      }
      return false;
    }
    this.#scanScope(scope);
    return true;
  }

  #scanScope(scope: string): void {
    this.#opts.attacher.scan({ scopes: new Set([scope]) }).catch((err: unknown) => {
      this.#opts.metrics.error("discovery");
      this.#opts.log.error({ err, netns: scope }, "listing a namespace failed");
    });
  }
}
