/**
 * rtnetlink (NETLINK_ROUTE) sockets for network devices: a one-shot RTM_GETLINK dump
 * and sockets subscribed to RTMGRP_LINK inside a named network namespace.
 * Layouts: <linux/netlink.h> (nlmsghdr, sockaddr_nl), <linux/rtnetlink.h> (ifinfomsg, rtattr),
 * <linux/if_link.h> (IFLA_IFNAME). A netlink socket keeps its namespace alive while open.
 */
import { ptr } from "bun:ffi";
import { BpfError, ERRNO } from "./errors.ts";
import { lastErrno, libc } from "./ffi.ts";
import { withNetns } from "./netns.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
/** Multicast group of link (device) changes. */
export const RTMGRP_LINK = 1;
const MSG_DONTWAIT = 0x40;

const NLMSG_HDRLEN = 16;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSG_OVERRUN = 4;
const NLM_F_REQUEST = 1;
const NLM_F_DUMP = 0x300;
const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const IFINFOMSG_LEN = 16;
const IFLA_IFNAME = 3;
/** ARPHRD_LOOPBACK from <linux/if_arp.h>. */
const ARPHRD_LOOPBACK = 772;
/** Large enough for any one netlink datagram the kernel sends for links. */
const RECV_BUFFER_BYTES = 64 * 1024;

/** A device as rtnetlink describes it. */
export interface NetlinkLink {
  readonly ifname: string;
  readonly ifindex: number;
  readonly loopback: boolean;
}

/** One RTM_NEWLINK (device added or changed) or RTM_DELLINK (device removed). */
export interface LinkChange extends NetlinkLink {
  readonly kind: "new" | "del";
}

const align4 = (n: number): number => (n + 3) & ~3;

/**
 * Parses the rtnetlink messages in one datagram. Link messages become changes; an
 * NLMSG_ERROR with a non-zero code throws; `done` is set by NLMSG_DONE.
 * @throws BpfError (EBADMSG) for truncated messages.
 */
export function parseLinkMessages(buf: Uint8Array): { changes: LinkChange[]; done: boolean } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const changes: LinkChange[] = [];
  let done = false;
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = view.getUint32(off, true);
    const type = view.getUint16(off + 4, true);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new BpfError("netlink recv", ERRNO.EBADMSG, `message of ${len} bytes at ${off}`);
    }
    if (type === NLMSG_DONE) done = true;
    else if (type === NLMSG_ERROR) {
      const code = len >= NLMSG_HDRLEN + 4 ? view.getInt32(off + NLMSG_HDRLEN, true) : 0;
      if (code !== 0) throw new BpfError("netlink request", -code);
    } else if (type === NLMSG_OVERRUN) {
      throw new BpfError("netlink recv", ERRNO.ENOBUFS, "NLMSG_OVERRUN");
    } else if ((type === RTM_NEWLINK || type === RTM_DELLINK) && len >= NLMSG_HDRLEN + 16) {
      const link = parseLink(buf, view, off + NLMSG_HDRLEN, off + len);
      if (link !== undefined) changes.push({ kind: type === RTM_NEWLINK ? "new" : "del", ...link });
    }
    off += align4(len);
  }
  return { changes, done };
}

function parseLink(
  buf: Uint8Array,
  view: DataView,
  start: number,
  end: number,
): NetlinkLink | undefined {
  const arphrd = view.getUint16(start + 2, true);
  const ifindex = view.getInt32(start + 4, true);
  let at = start + IFINFOMSG_LEN;
  while (at + 4 <= end) {
    const alen = view.getUint16(at, true);
    const atype = view.getUint16(at + 2, true) & 0x3fff;
    if (alen < 4 || at + alen > end) break;
    if (atype === IFLA_IFNAME) {
      let stop = at + 4;
      while (stop < at + alen && buf[stop] !== 0) stop++;
      const ifname = Buffer.from(buf.subarray(at + 4, stop)).toString("utf8");
      return { ifname, ifindex, loopback: arphrd === ARPHRD_LOOPBACK };
    }
    at += align4(alen);
  }
  return undefined;
}

/**
 * Opens a NETLINK_ROUTE socket inside the named namespace (the calling thread's own one when
 * `netns` is undefined), bound to the multicast `groups` (0 for none).
 * @throws BpfError naming the call that failed (ENOENT when the namespace is gone).
 */
export function openRouteSocket(
  netns: string | undefined,
  groups: number,
  nonBlocking = true,
): number {
  return withNetns(netns, () => {
    const flags = SOCK_RAW | SOCK_CLOEXEC | (nonBlocking ? SOCK_NONBLOCK : 0);
    const fd = libc().socket(AF_NETLINK, flags, NETLINK_ROUTE);
    if (fd < 0) throw new BpfError("socket(AF_NETLINK)", lastErrno());
    // struct sockaddr_nl { sa_family_t nl_family; u16 pad; u32 nl_pid; u32 nl_groups; }
    const addr = new DataView(new ArrayBuffer(12));
    addr.setUint16(0, AF_NETLINK, true);
    addr.setUint32(8, groups, true);
    if (libc().bind(fd, ptr(addr), 12) !== 0) {
      const errno = lastErrno();
      libc().close(fd);
      throw new BpfError("bind(AF_NETLINK)", errno);
    }
    return fd;
  });
}

/** Closes a socket from {@link openRouteSocket}. */
export function closeRouteSocket(fd: number): void {
  libc().close(fd);
}

const recvBuffer = new Uint8Array(RECV_BUFFER_BYTES);

/**
 * Reads every datagram waiting on a non-blocking link socket and returns the changes in
 * order. Returns "overrun" when the kernel dropped notifications (ENOBUFS): the caller
 * must list the namespace again.
 * @throws BpfError for any other recv failure.
 */
export function readLinkChanges(fd: number): LinkChange[] | "overrun" {
  const out: LinkChange[] = [];
  let overrun = false;
  for (;;) {
    const n = Number(libc().recv(fd, ptr(recvBuffer), RECV_BUFFER_BYTES, MSG_DONTWAIT));
    if (n < 0) {
      const errno = lastErrno();
      if (errno === ERRNO.EAGAIN) break;
      if (errno === ERRNO.EINTR) continue;
      if (errno === ERRNO.ENOBUFS) {
        overrun = true;
        continue;
      }
      throw new BpfError("recv(netlink)", errno);
    }
    if (n === 0) break;
    try {
      out.push(...parseLinkMessages(recvBuffer.subarray(0, n)).changes);
    } catch (err) {
      if (err instanceof BpfError && err.errno === ERRNO.ENOBUFS) overrun = true;
      else throw err;
    }
  }
  return overrun ? "overrun" : out;
}

let dumpSeq = 1;

/**
 * Lists the devices of a namespace with an RTM_GETLINK dump (no child process).
 * @throws BpfError naming the failing call (ENOENT when the namespace does not exist).
 */
export function listLinks(netns: string | undefined): NetlinkLink[] {
  const fd = openRouteSocket(netns, 0, false);
  try {
    const req = new DataView(new ArrayBuffer(NLMSG_HDRLEN + IFINFOMSG_LEN));
    const seq = dumpSeq++;
    req.setUint32(0, NLMSG_HDRLEN + IFINFOMSG_LEN, true);
    req.setUint16(4, RTM_GETLINK, true);
    req.setUint16(6, NLM_F_REQUEST | NLM_F_DUMP, true);
    req.setUint32(8, seq, true);
    if (Number(libc().send(fd, ptr(req), req.byteLength, 0)) < 0) {
      throw new BpfError("send(RTM_GETLINK)", lastErrno());
    }
    const links: NetlinkLink[] = [];
    for (;;) {
      const n = Number(libc().recv(fd, ptr(recvBuffer), RECV_BUFFER_BYTES, 0));
      if (n < 0) {
        const errno = lastErrno();
        if (errno === ERRNO.EINTR) continue;
        throw new BpfError("recv(RTM_GETLINK)", errno);
      }
      const { changes, done } = parseLinkMessages(recvBuffer.subarray(0, n));
      for (const c of changes)
        links.push({ ifname: c.ifname, ifindex: c.ifindex, loopback: c.loopback });
      if (done || n === 0) return links;
    }
  } finally {
    libc().close(fd);
  }
}
