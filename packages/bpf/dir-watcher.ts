/**
 * Entries appearing in and leaving one directory (inotify(7)), read through an
 * {@link FdPoller}: used for /run/netns, where `ip netns add/delete` create and remove
 * the namespace files. Not node:fs watch, whose watcher thread has crashed Bun 1.4
 * when namespaces came and went around a closed watcher.
 */
import { ptr } from "bun:ffi";
import { BpfError, ERRNO } from "./errors.ts";
import type { FdPoller } from "./fd-poller.ts";
import { cString, lastErrno, libc } from "./ffi.ts";

const IN_NONBLOCK = 0o4000;
const IN_CLOEXEC = 0o2000000;
const IN_MOVED_FROM = 0x40;
const IN_MOVED_TO = 0x80;
const IN_CREATE = 0x100;
const IN_DELETE = 0x200;
const IN_DELETE_SELF = 0x400;
const IN_Q_OVERFLOW = 0x4000;
/** struct inotify_event { int wd; u32 mask, cookie, len; char name[len]; } */
const EVENT_HEADER = 16;

/** One directory change: an entry `name` was added or removed, or events were lost. */
export type DirChange =
  | { readonly kind: "added" | "removed"; readonly name: string }
  | { readonly kind: "overflow" | "gone" };

/** Parses the inotify events in `buf` (exported for tests). */
export function parseInotifyEvents(buf: Uint8Array): DirChange[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: DirChange[] = [];
  let off = 0;
  while (off + EVENT_HEADER <= buf.length) {
    const mask = view.getUint32(off + 4, true);
    const len = view.getUint32(off + 12, true);
    let end = off + EVENT_HEADER;
    while (end < off + EVENT_HEADER + len && buf[end] !== 0) end++;
    const name = Buffer.from(buf.subarray(off + EVENT_HEADER, end)).toString("utf8");
    if (mask & IN_Q_OVERFLOW) out.push({ kind: "overflow" });
    else if (mask & IN_DELETE_SELF) out.push({ kind: "gone" });
    else if (mask & (IN_CREATE | IN_MOVED_TO)) out.push({ kind: "added", name });
    else if (mask & (IN_DELETE | IN_MOVED_FROM)) out.push({ kind: "removed", name });
    off += EVENT_HEADER + len;
  }
  return out;
}

/** Watches one directory until closed. */
export class DirWatcher {
  readonly #fd: number;
  readonly #id: number;
  readonly #poller: FdPoller;
  readonly #buf = new Uint8Array(64 * 1024);
  #closed = false;

  /**
   * Starts watching `path`; `onChanges` gets each batch in order.
   * @throws BpfError (ENOENT when the directory does not exist).
   */
  constructor(path: string, poller: FdPoller, onChanges: (changes: DirChange[]) => void) {
    this.#poller = poller;
    this.#fd = libc().inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (this.#fd < 0) throw new BpfError("inotify_init1", lastErrno());
    const mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF;
    if (libc().inotify_add_watch(this.#fd, cString(path), mask) < 0) {
      const errno = lastErrno();
      libc().close(this.#fd);
      throw new BpfError(`inotify_add_watch(${path})`, errno);
    }
    try {
      this.#id = poller.add(this.#fd, () => {
        const changes = this.#read();
        if (changes.length > 0) onChanges(changes);
      });
    } catch (err) {
      libc().close(this.#fd);
      throw err;
    }
  }

  /** Stops watching. Safe twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#poller.remove(this.#id);
    libc().close(this.#fd);
  }

  #read(): DirChange[] {
    const out: DirChange[] = [];
    for (;;) {
      const n = Number(libc().read(this.#fd, ptr(this.#buf), this.#buf.length));
      if (n < 0) {
        const errno = lastErrno();
        if (errno === ERRNO.EAGAIN) return out;
        if (errno === ERRNO.EINTR) continue;
        throw new BpfError("read(inotify)", errno);
      }
      if (n === 0) return out;
      out.push(...parseInotifyEvents(this.#buf.subarray(0, n)));
    }
  }
}
