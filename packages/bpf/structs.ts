/**
 * In-memory layouts of the libbpf 1.1 option structs passed by pointer
 * (x86_64 / LP64). libbpf checks `sz` against the fields it knows, so `sz`
 * must be the C `sizeof` including the trailing `size_t :0` padding.
 * See /usr/include/bpf/libbpf.h (bpf_tc_hook, bpf_tc_opts) and bpf.h
 * (bpf_test_run_opts).
 */
import { type Pointer, ptr } from "bun:ffi";

/** enum bpf_tc_attach_point. */
export const BPF_TC_INGRESS = 1 << 0;
export const BPF_TC_EGRESS = 1 << 1;

/** struct bpf_tc_hook { size_t sz; int ifindex; enum attach_point; __u32 parent; size_t :0; } */
export const TC_HOOK = { size: 24, sz: 0, ifindex: 8, attachPoint: 12, parent: 16 } as const;

/** struct bpf_tc_opts { size_t sz; int prog_fd; __u32 flags, prog_id, handle, priority; size_t :0; } */
export const TC_OPTS = {
  size: 32,
  sz: 0,
  progFd: 8,
  flags: 12,
  progId: 16,
  handle: 20,
  priority: 24,
} as const;

/** struct bpf_test_run_opts (libbpf 1.1, up to batch_size). */
export const TEST_RUN_OPTS = {
  size: 80,
  sz: 0,
  dataIn: 8,
  dataOut: 16,
  dataSizeIn: 24,
  dataSizeOut: 28,
  ctxIn: 32,
  ctxOut: 40,
  ctxSizeIn: 48,
  ctxSizeOut: 52,
  retval: 56,
  repeat: 60,
  duration: 64,
  flags: 68,
  cpu: 72,
  batchSize: 76,
} as const;

/** A zeroed C struct with its size written at offset 0 (`sz`). */
export class CStruct {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    this.view.setBigUint64(0, BigInt(size), true);
  }

  /** Address of the struct; valid while this object is alive. */
  get ptr(): Pointer {
    return ptr(this.bytes);
  }

  i32(offset: number, value?: number): number {
    if (value !== undefined) this.view.setInt32(offset, value, true);
    return this.view.getInt32(offset, true);
  }

  u32(offset: number, value?: number): number {
    if (value !== undefined) this.view.setUint32(offset, value >>> 0, true);
    return this.view.getUint32(offset, true);
  }

  setPtr(offset: number, p: Pointer | null): void {
    this.view.setBigUint64(offset, BigInt(p ?? 0), true);
  }
}

/** A bpf_tc_hook for `ifindex` at the given attach point(s). */
export function tcHook(ifindex: number, attachPoint: number): CStruct {
  const s = new CStruct(TC_HOOK.size);
  s.i32(TC_HOOK.ifindex, ifindex);
  s.u32(TC_HOOK.attachPoint, attachPoint);
  return s;
}

/** A bpf_tc_opts; pass progFd to attach, or handle + priority (progFd 0) to detach. */
export function tcOpts(init: { progFd?: number; handle?: number; priority?: number }): CStruct {
  const s = new CStruct(TC_OPTS.size);
  s.i32(TC_OPTS.progFd, init.progFd ?? 0);
  s.u32(TC_OPTS.handle, init.handle ?? 0);
  s.u32(TC_OPTS.priority, init.priority ?? 0);
  return s;
}
