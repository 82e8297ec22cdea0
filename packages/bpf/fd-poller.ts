/**
 * Readiness of file descriptors without polling: an epoll set that a worker thread
 * waits on (epoll-worker.ts). Each fd is registered EPOLLONESHOT; the worker posts its
 * id, the main thread runs the fd's handler (which reads it) and re-arms it, so only
 * the main thread ever touches the fds. An idle poller costs one blocked thread.
 */
import { ptr } from "bun:ffi";
import { BpfError, ERRNO } from "./errors.ts";
import { lastErrno, libc } from "./ffi.ts";

const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLLIN = 0x1;
const EPOLLONESHOT = 1 << 30;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
/** Id of the wake eventfd that ends the worker; fds get ids from 1 up, never reused. */
const WAKE_ID = 0;

interface Registered {
  readonly fd: number;
  readonly onReady: () => void;
}

function epollEvent(events: number, id: number): DataView {
  const ev = new DataView(new ArrayBuffer(12)); // packed struct epoll_event on x86_64
  ev.setUint32(0, events, true);
  ev.setBigUint64(4, BigInt(id), true);
  return ev;
}

/** Calls a handler whenever one of its fds is readable. Use from one JS thread. */
export class FdPoller {
  readonly #onError: (err: unknown) => void;
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #worker: Worker;
  readonly #fds = new Map<number, Registered>();
  #nextId = WAKE_ID + 1;
  #closed = false;
  readonly #stopped: Promise<void>;

  /** @throws BpfError when epoll or eventfd cannot be created. */
  constructor(onError: (err: unknown) => void) {
    this.#onError = onError;
    this.#epfd = libc().epoll_create1(EPOLL_CLOEXEC);
    if (this.#epfd < 0) throw new BpfError("epoll_create1", lastErrno());
    this.#wakeFd = libc().eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (this.#wakeFd < 0) {
      const errno = lastErrno();
      libc().close(this.#epfd);
      throw new BpfError("eventfd", errno);
    }
    this.#ctl(EPOLL_CTL_ADD, this.#wakeFd, EPOLLIN, WAKE_ID);
    this.#worker = new Worker(new URL("./epoll-worker.ts", import.meta.url).href);
    let resolveStopped: () => void = () => {};
    this.#stopped = new Promise((r) => {
      resolveStopped = r;
    });
    this.#worker.onmessage = (e: MessageEvent<{ ids?: number[]; errno?: number }>) => {
      if (e.data.ids !== undefined) this.#ready(e.data.ids);
      else {
        if (e.data.errno !== undefined) this.#onError(new BpfError("epoll_wait", e.data.errno));
        resolveStopped();
      }
    };
    this.#worker.onerror = (e) => this.#onError(e.error ?? new Error(e.message));
    this.#worker.postMessage({ epfd: this.#epfd });
    this.#worker.unref();
  }

  /**
   * Calls `onReady` each time `fd` is readable; `onReady` must read until EAGAIN.
   * Returns an id for {@link remove}. @throws BpfError from epoll_ctl.
   */
  add(fd: number, onReady: () => void): number {
    if (this.#closed) throw new BpfError("FdPoller.add", ERRNO.EBADF, "poller is closed");
    const id = this.#nextId++;
    this.#ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLONESHOT, id);
    this.#fds.set(id, { fd, onReady });
    return id;
  }

  /** Stops watching an fd (the caller closes it afterwards). */
  remove(id: number): void {
    const r = this.#fds.get(id);
    if (r === undefined) return;
    this.#fds.delete(id);
    libc().epoll_ctl(this.#epfd, EPOLL_CTL_DEL, r.fd, null);
  }

  /** Ends the worker thread and closes the epoll set (not the registered fds). Safe twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    libc().write(this.#wakeFd, ptr(new BigUint64Array([1n])), 8);
    await Promise.race([this.#stopped, Bun.sleep(1000)]);
    this.#worker.terminate();
    this.#fds.clear();
    libc().close(this.#wakeFd);
    libc().close(this.#epfd);
  }

  #ctl(op: number, fd: number, events: number, id: number): void {
    if (libc().epoll_ctl(this.#epfd, op, fd, ptr(epollEvent(events, id))) !== 0) {
      throw new BpfError("epoll_ctl", lastErrno());
    }
  }

  #ready(ids: number[]): void {
    for (const id of ids) {
      const r = this.#fds.get(id);
      if (r === undefined || this.#closed) continue; // removed since the worker saw it
      try {
        r.onReady();
      } catch (err) {
        this.#onError(err);
      }
      if (!this.#fds.has(id)) continue; // the handler removed it
      try {
        this.#ctl(EPOLL_CTL_MOD, r.fd, EPOLLIN | EPOLLONESHOT, id);
      } catch (err) {
        this.#onError(err);
      }
    }
  }
}
