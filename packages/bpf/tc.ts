import { BpfError, ERRNO } from "./errors.ts";
import { libbpf } from "./ffi.ts";
import { ifNameToIndex, withNetns } from "./netns.ts";
import { BPF_TC_EGRESS, BPF_TC_INGRESS, TC_OPTS, tcHook, tcOpts } from "./structs.ts";

const { EEXIST, ENOENT, ENODEV } = ERRNO;

/** An interface to attach to, optionally inside a named netns (`/run/netns/<netns>`). */
export interface AttachTarget {
  ifname: string;
  netns?: string;
}

/** One tc filter we installed: enough to remove it again. */
interface TcFilter {
  handle: number;
  priority: number;
}

/** What one attach installed on one interface. */
export interface TcAttachment {
  target: AttachTarget;
  ifindex: number;
  /** True when the clsact qdisc was created by us (and is destroyed on detach). */
  createdHook: boolean;
  ingress: TcFilter;
  egress: TcFilter;
}

/** Stable key of a target: `<netns>/<ifname>` or `/<ifname>`. */
export function targetKey(t: AttachTarget): string {
  return `${t.netns ?? ""}/${t.ifname}`;
}

/** BPF_TC_F_REPLACE: replace the filter at the given handle and priority instead of failing. */
const BPF_TC_F_REPLACE = 1;
/** Handle of filters installed at a fixed priority. */
const FIXED_HANDLE = 1;

function attachOne(
  ifindex: number,
  point: number,
  progFd: number,
  call: string,
  priority: number | undefined,
): TcFilter {
  const hook = tcHook(ifindex, point);
  const opts =
    priority === undefined
      ? tcOpts({ progFd })
      : tcOpts({ progFd, handle: FIXED_HANDLE, priority });
  if (priority !== undefined) opts.u32(TC_OPTS.flags, BPF_TC_F_REPLACE);
  const rc = libbpf().bpf_tc_attach(hook.ptr, opts.ptr);
  if (rc < 0) throw new BpfError(call, -rc);
  return { handle: opts.u32(TC_OPTS.handle), priority: opts.u32(TC_OPTS.priority) };
}

function detachOne(ifindex: number, point: number, f: TcFilter, call: string): void {
  const hook = tcHook(ifindex, point);
  const opts = tcOpts({ handle: f.handle, priority: f.priority });
  const rc = libbpf().bpf_tc_detach(hook.ptr, opts.ptr);
  // ENOENT: the filter is already gone (qdisc deleted by someone else).
  if (rc < 0 && -rc !== ENOENT) throw new BpfError(call, -rc);
}

function destroyHook(ifindex: number, call: string): void {
  const rc = libbpf().bpf_tc_hook_destroy(tcHook(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS).ptr);
  if (rc < 0 && -rc !== ENOENT) throw new BpfError(call, -rc);
}

/**
 * Attaches the ingress and egress programs to `target` (creating the clsact
 * qdisc when missing). On failure nothing stays installed. With `priority`
 * (1..65535) the filters go to that priority and handle 1, replacing what is
 * there: a loader that restarts after being killed takes over its own earlier
 * filters atomically instead of adding a second pair beside them.
 */
export function tcAttach(
  target: AttachTarget,
  ingressFd: number,
  egressFd: number,
  priority?: number,
): TcAttachment {
  const where = targetKey(target);
  return withNetns(target.netns, () => {
    const ifindex = ifNameToIndex(target.ifname);
    const rc = libbpf().bpf_tc_hook_create(tcHook(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS).ptr);
    if (rc < 0 && -rc !== EEXIST) throw new BpfError(`bpf_tc_hook_create(${where})`, -rc);
    const createdHook = rc === 0;
    let ingress: TcFilter | undefined;
    try {
      const call = (dir: string): string => `bpf_tc_attach(${where} ${dir})`;
      ingress = attachOne(ifindex, BPF_TC_INGRESS, ingressFd, call("ingress"), priority);
      const egress = attachOne(ifindex, BPF_TC_EGRESS, egressFd, call("egress"), priority);
      return { target: { ...target }, ifindex, createdHook, ingress, egress };
    } catch (err) {
      try {
        if (ingress) detachOne(ifindex, BPF_TC_INGRESS, ingress, `bpf_tc_detach(${where} ingress)`);
        if (createdHook) destroyHook(ifindex, `bpf_tc_hook_destroy(${where})`);
      } catch (undoErr) {
        throw new BpfError(`tc attach rollback (${where})`, 0, String(undoErr), { cause: err });
      }
      throw err;
    }
  });
}

/**
 * Removes what `tcAttach` installed. A target whose netns or device no longer
 * exists counts as detached (the kernel removed the filters with it).
 */
export function tcDetach(a: TcAttachment): void {
  const where = targetKey(a.target);
  try {
    withNetns(a.target.netns, () => {
      const ifindex = ifNameToIndex(a.target.ifname);
      if (ifindex !== a.ifindex) return; // device was recreated: our filters went with the old one
      detachOne(ifindex, BPF_TC_INGRESS, a.ingress, `bpf_tc_detach(${where} ingress)`);
      detachOne(ifindex, BPF_TC_EGRESS, a.egress, `bpf_tc_detach(${where} egress)`);
      if (a.createdHook) destroyHook(ifindex, `bpf_tc_hook_destroy(${where})`);
    });
  } catch (err) {
    if (err instanceof BpfError && (err.errno === ENOENT || err.errno === ENODEV)) return;
    throw err;
  }
}
