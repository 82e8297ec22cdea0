/**
 * Change notification for network devices across namespaces: one rtnetlink socket
 * subscribed to RTMGRP_LINK per watched namespace, all read through one {@link FdPoller}.
 */
import { FdPoller } from "./fd-poller.ts";
import {
  closeRouteSocket,
  type LinkChange,
  openRouteSocket,
  RTMGRP_LINK,
  readLinkChanges,
} from "./netlink.ts";

/** What a {@link LinkWatcher} reports. */
export interface LinkWatcherHandlers {
  /** Device changes in `netns` ("" = the namespace the watcher was created in), in kernel order. */
  onChanges(netns: string, changes: LinkChange[]): void;
  /** The kernel dropped notifications for `netns` (socket buffer full): list it again. */
  onOverrun(netns: string): void;
  /** Reading a socket or waiting failed; the watcher keeps going where it can. */
  onError(err: unknown, netns?: string): void;
}

interface Watched {
  readonly id: number;
  readonly fd: number;
}

/**
 * Watches link changes in any number of namespaces. Use from one JS thread. Each watched
 * namespace holds one socket, which keeps the namespace alive until it is unwatched.
 */
export class LinkWatcher {
  readonly #handlers: LinkWatcherHandlers;
  readonly #poller: FdPoller;
  readonly #ownsPoller: boolean;
  readonly #watched = new Map<string, Watched>();

  /** Reads through `poller` when given (closed by its owner), else through one of its own. */
  constructor(handlers: LinkWatcherHandlers, poller?: FdPoller) {
    this.#handlers = handlers;
    this.#ownsPoller = poller === undefined;
    this.#poller = poller ?? new FdPoller((err) => handlers.onError(err));
  }

  /** Namespaces watched now ("" = own). */
  watching(): string[] {
    return [...this.#watched.keys()];
  }

  /** True when `netns` is watched. */
  has(netns: string): boolean {
    return this.#watched.has(netns);
  }

  /**
   * Starts watching `netns` ("" = own namespace); does nothing when already watched.
   * Changes made before this call are not reported: list the namespace after watching it.
   * @throws BpfError when the namespace cannot be entered (EINVAL: the file is not a
   * namespace mount yet) or the socket not opened.
   */
  watch(netns: string): void {
    if (this.#watched.has(netns)) return;
    const fd = openRouteSocket(netns === "" ? undefined : netns, RTMGRP_LINK);
    let id: number;
    try {
      id = this.#poller.add(fd, () => this.#read(netns, fd));
    } catch (err) {
      closeRouteSocket(fd);
      throw err;
    }
    this.#watched.set(netns, { id, fd });
  }

  /** Stops watching `netns` and closes its socket (releasing the namespace). */
  unwatch(netns: string): void {
    const w = this.#watched.get(netns);
    if (w === undefined) return;
    this.#watched.delete(netns);
    this.#poller.remove(w.id);
    closeRouteSocket(w.fd);
  }

  /** Closes every socket (and the poller when it owns it). Safe twice. */
  async close(): Promise<void> {
    for (const netns of [...this.#watched.keys()]) this.unwatch(netns);
    if (this.#ownsPoller) await this.#poller.close();
  }

  #read(netns: string, fd: number): void {
    let result: LinkChange[] | "overrun";
    try {
      result = readLinkChanges(fd);
    } catch (err) {
      this.#handlers.onError(err, netns);
      result = "overrun";
    }
    if (result === "overrun") this.#handlers.onOverrun(netns);
    else if (result.length > 0) this.#handlers.onChanges(netns, result);
  }
}
