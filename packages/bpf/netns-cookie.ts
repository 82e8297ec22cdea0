import { ptr } from "bun:ffi";
import { BpfError } from "./errors.ts";
import { lastErrno, libc } from "./ffi.ts";
import { withNetns } from "./netns.ts";

/** <sys/socket.h> / <asm-generic/socket.h> numbers. */
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
/** Linux 5.14+: the u64 cookie of the socket's network namespace. */
const SO_NETNS_COOKIE = 71;

/**
 * Cookie of a network namespace, the same number the trace records carry in
 * netns_cookie (the kernel's net->net_cookie): a socket is created inside the named
 * netns (or the own one when `netns` is undefined) and asked with SO_NETNS_COOKIE.
 * Throws {@link BpfError} naming the call that failed (also when the netns cannot be entered).
 */
export function netnsCookie(netns: string | undefined): bigint {
  return withNetns(netns, () => {
    const fd = libc().socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new BpfError("socket(AF_UNIX)", lastErrno());
    try {
      const value = new BigUint64Array(1);
      const len = new Uint32Array([8]);
      const rc = libc().getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, ptr(value), ptr(len));
      if (rc !== 0) throw new BpfError("getsockopt(SO_NETNS_COOKIE)", lastErrno());
      return value[0] ?? 0n;
    } finally {
      libc().close(fd);
    }
  });
}
