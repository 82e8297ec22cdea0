import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { withNetns } from "@periscope/bpf";

/** <sys/socket.h> / <asm-generic/socket.h> numbers. */
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
/** Linux 5.14+: the u64 cookie of the socket's network namespace. */
const SO_NETNS_COOKIE = 71;

/** Reading a namespace's cookie failed. */
export class NetnsCookieError extends Error {
  override name = "NetnsCookieError";
  constructor(
    message: string,
    readonly errno: number,
    options?: ErrorOptions,
  ) {
    super(`${message} (errno ${errno})`, options);
  }
}

const { ptr: P, i32 } = FFIType;
const symbols = {
  socket: { args: [i32, i32, i32], returns: i32 },
  getsockopt: { args: [i32, i32, i32, P, P], returns: i32 },
  close: { args: [i32], returns: i32 },
  __errno_location: { args: [], returns: P },
} as const;
type Libc = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let libc: Libc | undefined;

/** The C library, opened on first use. */
function lib(): Libc {
  libc ??= dlopen("libc.so.6", symbols).symbols;
  return libc;
}

function errno(): number {
  const loc = lib().__errno_location();
  return loc === null ? 0 : read.i32(loc, 0);
}

/**
 * Cookie of a network namespace, the same number the trace records carry in
 * netns_cookie (the kernel's net->net_cookie): a socket is created inside the named
 * netns (or the own one when `netns` is undefined) and asked with SO_NETNS_COOKIE.
 * @throws NetnsCookieError; BpfError when the netns cannot be entered.
 */
export function netnsCookie(netns: string | undefined): bigint {
  return withNetns(netns, () => {
    const fd = lib().socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new NetnsCookieError("socket(AF_UNIX)", errno());
    try {
      const value = new BigUint64Array(1);
      const len = new Uint32Array([8]);
      const rc = lib().getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, ptr(value), ptr(len));
      if (rc !== 0) throw new NetnsCookieError("getsockopt(SO_NETNS_COOKIE)", errno());
      return value[0] ?? 0n;
    } finally {
      lib().close(fd);
    }
  });
}
