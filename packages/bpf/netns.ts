import { BpfError, ERRNO } from "./errors.ts";
import { cString, lastErrno, libc } from "./ffi.ts";

/** setns(2) namespace type for network namespaces. */
const CLONE_NEWNET = 0x40000000;
const O_RDONLY_CLOEXEC = 0o2000000;

/** Directory where `ip netns add` keeps named network namespaces. */
export const NETNS_RUN_DIR = "/run/netns";

function openNs(path: string): number {
  const fd = libc().open(cString(path), O_RDONLY_CLOEXEC);
  if (fd < 0) throw new BpfError(`open(${path})`, lastErrno());
  return fd;
}

function enter(fd: number, what: string): void {
  if (libc().setns(fd, CLONE_NEWNET) !== 0) throw new BpfError(`setns(${what})`, lastErrno());
}

/**
 * Runs `fn` with the calling thread inside the named network namespace
 * (`/run/netns/<name>`), then moves the thread back to the namespace it was
 * in, also when `fn` throws. `fn` must be synchronous: setns(2) moves only
 * the calling thread, and no other JS may run while it is switched.
 * Without a name, `fn` runs in the current namespace.
 */
export function withNetns<T>(name: string | undefined, fn: () => T): T {
  if (name === undefined || name === "") return fn();
  if (name.includes("/") || name === "." || name === "..") {
    throw new BpfError(`setns(${name})`, ERRNO.EINVAL, "netns name must not contain '/'");
  }
  const original = openNs("/proc/thread-self/ns/net");
  try {
    const target = openNs(`${NETNS_RUN_DIR}/${name}`);
    try {
      enter(target, name);
    } finally {
      libc().close(target);
    }
    try {
      return fn();
    } finally {
      // Failing to return would leave this thread in the wrong namespace for
      // everything that follows; there is no safe way to continue.
      if (libc().setns(original, CLONE_NEWNET) !== 0) {
        const err = new BpfError("setns(restore original netns)", lastErrno());
        console.error(err);
        process.abort();
      }
    }
  } finally {
    libc().close(original);
  }
}

/**
 * Interface index of `ifname` in the calling thread's network namespace.
 * @throws BpfError (ENODEV) when there is no such interface.
 */
export function ifNameToIndex(ifname: string): number {
  const idx = libc().if_nametoindex(cString(ifname));
  if (idx === 0) {
    const errno = lastErrno();
    throw new BpfError(`if_nametoindex(${ifname})`, errno === 0 ? ERRNO.ENODEV : errno);
  }
  return idx;
}
