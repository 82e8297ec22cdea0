/**
 * Worker thread of {@link FdPoller}: blocks in epoll_wait(2) on the poller's epoll fd
 * and posts the ids of ready sockets to the main thread, which reads them and re-arms
 * them (EPOLLONESHOT), so this thread never touches a socket. Id 0 (the wake eventfd)
 * ends the loop. Blocking here keeps the main thread free and the process idle.
 */
import { ptr, read } from "bun:ffi";
import { ERRNO } from "./errors.ts";
import { lastErrno, libc } from "./ffi.ts";

declare const self: Worker;

/** struct epoll_event is packed on x86_64: u32 events, u64 data. */
const EVENT_BYTES = 12;
const MAX_EVENTS = 256;

function loop(epfd: number): void {
  const events = new Uint8Array(EVENT_BYTES * MAX_EVENTS);
  const at = ptr(events);
  for (;;) {
    const n = libc().epoll_wait(epfd, at, MAX_EVENTS, -1);
    if (n < 0) {
      const errno = lastErrno();
      if (errno === ERRNO.EINTR) continue;
      self.postMessage({ errno });
      return;
    }
    const ids: number[] = [];
    for (let i = 0; i < n; i++) ids.push(Number(read.u64(at, i * EVENT_BYTES + 4)));
    if (ids.includes(0)) return;
    self.postMessage({ ids });
  }
}

self.onmessage = (e: MessageEvent<{ epfd: number }>) => {
  loop(e.data.epfd);
  self.postMessage({ stopped: true });
};
