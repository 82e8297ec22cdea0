import { CLOCK_BOOTTIME, CLOCK_REALTIME, clockGettimeNs } from "@periscope/bpf";

/** Time sources the framer needs; injectable so tests drive time without sleeping. */
export interface FramerClock {
  /** Monotonic milliseconds (only differences matter). */
  monotonicMs(): number;
  /** Unix time in nanoseconds. */
  realtimeNs(): bigint;
  /** Unix time minus CLOCK_BOOTTIME, in nanoseconds: add to a record's ts_boot_ns. */
  bootToRealtimeNs(): bigint;
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
