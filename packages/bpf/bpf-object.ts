import { type Pointer, ptr, toArrayBuffer } from "bun:ffi";
import { BpfError, ERRNO } from "./errors.ts";
import { cString, isNull, lastErrno, libbpf } from "./ffi.ts";

/** The map `name` of an opened object. @throws BpfError ENOENT when it has none. */
export function findMap(obj: Pointer, name: string): Pointer {
  const map = libbpf().bpf_object__find_map_by_name(obj, cString(name));
  if (isNull(map)) throw new BpfError(`bpf_object__find_map_by_name(${name})`, ERRNO.ENOENT);
  return map;
}

/** File descriptor of the map `name` of a loaded object (owned by the object). */
export function mapFdOf(obj: Pointer, name: string): number {
  return libbpf().bpf_map__fd(findMap(obj, name));
}

/** File descriptor of the program `name` of a loaded object (owned by the object). */
export function programFd(obj: Pointer, name: string): number {
  const prog = libbpf().bpf_object__find_program_by_name(obj, cString(name));
  if (isNull(prog)) throw new BpfError(`bpf_object__find_program_by_name(${name})`, ERRNO.ENOENT);
  const fd = libbpf().bpf_program__fd(prog);
  if (fd < 0) throw new BpfError(`bpf_program__fd(${name})`, -fd);
  return fd;
}

/**
 * The initial value of an opened object's `.rodata` map, writable until load, checked to
 * hold at least `need` bytes; `what` names the struct that needs them in the error.
 */
export function rodataView(obj: Pointer, need: number, what: string): DataView {
  let map = libbpf().bpf_object__next_map(obj, null);
  while (!isNull(map) && !libbpf().bpf_map__name(map).toString().endsWith(".rodata")) {
    map = libbpf().bpf_object__next_map(obj, map);
  }
  if (isNull(map))
    throw new BpfError("find .rodata map", ERRNO.ENOENT, "object has no .rodata map");
  const sizeOut = new BigUint64Array(1);
  const value = libbpf().bpf_map__initial_value(map, ptr(sizeOut));
  const size = Number(sizeOut[0]);
  if (isNull(value) || size < need) {
    throw new BpfError(
      "bpf_map__initial_value(.rodata)",
      ERRNO.EINVAL,
      `.rodata is ${size} bytes, ${what} needs ${need}`,
    );
  }
  return new DataView(toArrayBuffer(value, 0, size));
}

/** Opens the object file at `path` (not loaded yet). */
export function openObject(path: string): Pointer {
  const obj = libbpf().bpf_object__open_file(cString(path), null);
  if (isNull(obj)) throw new BpfError(`bpf_object__open_file(${path})`, lastErrno());
  return obj;
}

/** Loads an opened object into the kernel; `path` names it in the error. */
export function loadObject(obj: Pointer, path: string): void {
  const loaded = libbpf().bpf_object__load(obj);
  if (loaded < 0) throw new BpfError(`bpf_object__load(${path})`, -loaded);
}

/**
 * Opens the object file at `path`, lets `setup` write its tunables and sizes, loads it
 * and hands it to `build`; the object is closed when any of these steps throws.
 */
export function loadObjectFile<T>(
  path: string,
  setup: (obj: Pointer) => void,
  build: (obj: Pointer) => T,
): T {
  const obj = openObject(path);
  try {
    setup(obj);
    loadObject(obj, path);
    return build(obj);
  } catch (err) {
    libbpf().bpf_object__close(obj);
    throw err;
  }
}

/** Sets the size of the map `name` before load (ring buffer bytes, table entries). */
export function setMaxEntries(obj: Pointer, name: string, entries: number): void {
  const rc = libbpf().bpf_map__set_max_entries(findMap(obj, name), entries);
  if (rc < 0) throw new BpfError(`bpf_map__set_max_entries(${name})`, -rc);
}

/** The per-CPU u64 values at u32 `key` of the per-CPU array `fd` (`name` for errors). */
export function readPerCpu(fd: number, name: string, key = 0): BigUint64Array {
  const ncpu = libbpf().libbpf_num_possible_cpus();
  if (ncpu <= 0) throw new BpfError("libbpf_num_possible_cpus", -ncpu);
  const values = new BigUint64Array(ncpu);
  const rc = libbpf().bpf_map_lookup_elem(fd, ptr(new Uint32Array([key])), ptr(values));
  if (rc < 0) throw new BpfError(`bpf_map_lookup_elem(${name})`, -rc);
  return values;
}

/** Sum of {@link readPerCpu} over CPUs. */
export function sumPerCpu(fd: number, name: string, key = 0): bigint {
  return readPerCpu(fd, name, key).reduce((a, b) => a + b, 0n);
}

/** @throws RangeError unless `bytes` is a power of two >= 4096 (a ring buffer size). */
export function checkRingBytes(bytes: number): number {
  if (!Number.isInteger(bytes) || bytes < 4096 || (bytes & (bytes - 1)) !== 0) {
    throw new RangeError(`ringBufferBytes must be a power of two >= 4096, got ${bytes}`);
  }
  return bytes;
}

/** @throws RangeError unless `fp` is undefined or a tc priority 1..65535. */
export function checkFilterPriority(fp: number | undefined): number | undefined {
  if (fp !== undefined && (!Number.isInteger(fp) || fp < 1 || fp > 0xffff)) {
    throw new RangeError(`filterPriority must be an integer in 1..65535, got ${fp}`);
  }
  return fp;
}

/** @throws RangeError unless `len` is an integer in 1..`max`. */
export function checkCaptureLen(len: number, max: number): number {
  if (!Number.isInteger(len) || len < 1 || len > max) {
    throw new RangeError(`captureLen must be an integer in 1..${max}, got ${len}`);
  }
  return len;
}
