import { ptr } from "bun:ffi";
import { BpfError } from "./errors.ts";
import { lastErrno, libc } from "./ffi.ts";

/** <linux/time.h> clock id of the wall clock. */
export const CLOCK_REALTIME = 0;
/** <linux/time.h> clock id of the monotonic clock: bpf_ktime_get_coarse_ns() (flow table times) counts on it. */
export const CLOCK_MONOTONIC = 1;
/** <linux/time.h> clock id of the boot clock (monotonic, counts suspend): trace records' ts_boot_ns. */
export const CLOCK_BOOTTIME = 7;

/** struct timespec { time_t tv_sec; long tv_nsec; } on 64-bit Linux, reused per call. */
const timespec = new BigInt64Array(2);
const timespecPtr = ptr(timespec);

/** Reads a clock through libc clock_gettime(2), in nanoseconds. Throws {@link BpfError}. */
export function clockGettimeNs(clockId: number): bigint {
  if (libc().clock_gettime(clockId, timespecPtr) !== 0) {
    throw new BpfError(`clock_gettime(${clockId})`, lastErrno());
  }
  return (timespec[0] ?? 0n) * 1_000_000_000n + (timespec[1] ?? 0n);
}
