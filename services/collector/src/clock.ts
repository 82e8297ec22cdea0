import { dlopen, FFIType, ptr } from "bun:ffi";

/** Time sources the framer needs; injectable so tests drive time without sleeping. */
export interface FramerClock {
  /** Monotonic milliseconds (only differences matter). */
  monotonicMs(): number;
  /** Unix time in nanoseconds. */
  realtimeNs(): bigint;
  /** Unix time minus CLOCK_BOOTTIME, in nanoseconds: add to a record's ts_boot_ns. */
  bootToRealtimeNs(): bigint;
}

/** <linux/time.h> clock ids. */
const CLOCK_REALTIME = 0;
const CLOCK_BOOTTIME = 7;

/** clock_gettime(2) failed. */
export class ClockError extends Error {
  override name = "ClockError";
}

const libc = dlopen("libc.so.6", {
  clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
});
/** struct timespec { time_t tv_sec; long tv_nsec; } on 64-bit Linux. */
const timespec = new BigInt64Array(2);
const timespecPtr = ptr(timespec);

/** Reads a clock through libc clock_gettime(2), in nanoseconds. */
export function clockGettimeNs(clockId: number): bigint {
  const rc = libc.symbols.clock_gettime(clockId, timespecPtr);
  if (rc !== 0) throw new ClockError(`clock_gettime(${clockId}) returned ${rc}`);
  return (timespec[0] ?? 0n) * 1_000_000_000n + (timespec[1] ?? 0n);
}

/**
 * Offset from CLOCK_BOOTTIME to CLOCK_REALTIME, in nanoseconds. The realtime read is
 * bracketed by two boottime reads and compared with their midpoint.
 */
export function measureBootToRealtimeNs(): bigint {
  const boot1 = clockGettimeNs(CLOCK_BOOTTIME);
  const real = clockGettimeNs(CLOCK_REALTIME);
  const boot2 = clockGettimeNs(CLOCK_BOOTTIME);
  return real - (boot1 + boot2) / 2n;
}

/**
 * The system clock; the boot→realtime offset is recomputed every `refreshMs` so that
 * wall-clock steps (NTP, settimeofday) show up in later frames.
 */
export function createSystemClock(refreshMs = 10_000): FramerClock {
  let offset = measureBootToRealtimeNs();
  let measuredAt = performance.now();
  return {
    monotonicMs: () => performance.now(),
    realtimeNs: () => clockGettimeNs(CLOCK_REALTIME),
    bootToRealtimeNs: () => {
      const now = performance.now();
      if (now - measuredAt >= refreshMs) {
        offset = measureBootToRealtimeNs();
        measuredAt = now;
      }
      return offset;
    },
  };
}

export { CLOCK_BOOTTIME, CLOCK_REALTIME };
