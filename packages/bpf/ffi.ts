import { dlopen, FFIType, type Pointer, read } from "bun:ffi";

const { ptr: P, i32, u32, i64_fast: i64, u64_fast: u64, void: VOID, cstring } = FFIType;

/** libbpf 1.x symbols used here; signatures from /usr/include/bpf/{libbpf,bpf}.h. */
const libbpfSymbols = {
  bpf_object__open_file: { args: [P, P], returns: P },
  bpf_object__load: { args: [P], returns: i32 },
  bpf_object__close: { args: [P], returns: VOID },
  bpf_object__next_map: { args: [P, P], returns: P },
  bpf_object__find_map_by_name: { args: [P, P], returns: P },
  bpf_object__find_program_by_name: { args: [P, P], returns: P },
  bpf_program__fd: { args: [P], returns: i32 },
  bpf_map__name: { args: [P], returns: cstring },
  bpf_map__fd: { args: [P], returns: i32 },
  bpf_map__set_max_entries: { args: [P, u32], returns: i32 },
  bpf_map__initial_value: { args: [P, P], returns: P },
  bpf_map_lookup_elem: { args: [i32, P, P], returns: i32 },
  ring_buffer__new: { args: [i32, P, P, P], returns: P },
  ring_buffer__consume: { args: [P], returns: i32 },
  ring_buffer__free: { args: [P], returns: VOID },
  bpf_tc_hook_create: { args: [P], returns: i32 },
  bpf_tc_hook_destroy: { args: [P], returns: i32 },
  bpf_tc_attach: { args: [P, P], returns: i32 },
  bpf_tc_detach: { args: [P, P], returns: i32 },
  bpf_prog_test_run_opts: { args: [i32, P], returns: i32 },
  libbpf_num_possible_cpus: { args: [], returns: i32 },
  bpf_map__reuse_fd: { args: [P, i32], returns: i32 },
  bpf_map_update_elem: { args: [i32, P, P, FFIType.u64_fast], returns: i32 },
  bpf_map_delete_elem: { args: [i32, P], returns: i32 },
  bpf_map_get_next_key: { args: [i32, P, P], returns: i32 },
  bpf_map_lookup_and_delete_batch: { args: [i32, P, P, P, P, P, P], returns: i32 },
  bpf_program__attach: { args: [P], returns: P },
  bpf_program__attach_cgroup: { args: [P, i32], returns: P },
  bpf_program__set_autoload: { args: [P, FFIType.bool], returns: i32 },
  bpf_link__destroy: { args: [P], returns: i32 },
  btf__parse: { args: [P, P], returns: P },
  btf__free: { args: [P], returns: VOID },
  btf__find_by_name_kind: { args: [P, P, u32], returns: i32 },
  btf__type_by_id: { args: [P, u32], returns: P },
  btf__name_by_offset: { args: [P, u32], returns: cstring },
} as const;

/**
 * libc symbols for namespaces, interface lookup, sockets and clocks. This is the one
 * place Periscope binds the C library; add symbols here rather than dlopen it again.
 */
const libcSymbols = {
  open: { args: [P, i32], returns: i32 },
  close: { args: [i32], returns: i32 },
  socket: { args: [i32, i32, i32], returns: i32 },
  getsockopt: { args: [i32, i32, i32, P, P], returns: i32 },
  clock_gettime: { args: [i32, P], returns: i32 },
  setns: { args: [i32, i32], returns: i32 },
  if_nametoindex: { args: [P], returns: u32 },
  bind: { args: [i32, P, u32], returns: i32 },
  send: { args: [i32, P, u64, i32], returns: i64 },
  recv: { args: [i32, P, u64, i32], returns: i64 },
  epoll_create1: { args: [i32], returns: i32 },
  epoll_ctl: { args: [i32, i32, i32, P], returns: i32 },
  epoll_wait: { args: [i32, P, i32, i32], returns: i32 },
  eventfd: { args: [u32, i32], returns: i32 },
  write: { args: [i32, P, u64], returns: i64 },
  read: { args: [i32, P, u64], returns: i64 },
  inotify_init1: { args: [i32], returns: i32 },
  inotify_add_watch: { args: [i32, P, u32], returns: i32 },
  mmap: { args: [P, FFIType.u64_fast, i32, i32, i32, FFIType.i64_fast], returns: P },
  munmap: { args: [P, FFIType.u64_fast], returns: i32 },
  sysconf: { args: [i32], returns: FFIType.i64_fast },
  __errno_location: { args: [], returns: P },
} as const;

type Libbpf = ReturnType<typeof dlopen<typeof libbpfSymbols>>["symbols"];
type Libc = ReturnType<typeof dlopen<typeof libcSymbols>>["symbols"];

let libbpfCache: Libbpf | undefined;
let libcCache: Libc | undefined;

/** libbpf.so.1, opened on first use. */
export function libbpf(): Libbpf {
  libbpfCache ??= dlopen("libbpf.so.1", libbpfSymbols).symbols;
  return libbpfCache;
}

/** The C library, opened on first use. */
export function libc(): Libc {
  libcCache ??= dlopen("libc.so.6", libcSymbols).symbols;
  return libcCache;
}

/**
 * errno of the calling thread. Read it right after the failing call: later
 * runtime work may overwrite it, so treat it as best effort.
 */
export function lastErrno(): number {
  const loc = libc().__errno_location();
  return loc === null ? 0 : read.i32(loc, 0);
}

/** NUL-terminated copy of a string, for `const char *` arguments. */
export function cString(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** True when a returned pointer is NULL. */
export function isNull(p: Pointer | null): p is null {
  return p === null || p === 0;
}
