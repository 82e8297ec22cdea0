import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { UsageError } from "./args.ts";

const UNIT_NS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/**
 * Parses a Go-style duration ("5m", "1h30m", "1.5h", "300ms") into milliseconds, or
 * undefined when `s` is not one.
 */
export function parseDurationMs(s: string): number | undefined {
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$/.exec(s);
  if (!m) return s === "0" ? 0 : undefined;
  let ns = 0;
  for (const part of s.replace(/^[+-]/, "").matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g)) {
    ns += Number(part[1]) * (UNIT_NS[part[2] ?? ""] ?? Number.NaN);
  }
  if (!Number.isFinite(ns)) return undefined;
  return (m[1] === "-" ? -ns : ns) / 1e6;
}

/** Absolute formats hubble accepts besides RFC 3339 (local time when no zone is given). */
const ABSOLUTE = [
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/, // RFC 3339 (nano)
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/,
  /^\d{4}-\d{2}-\d{2}$/,
];

/**
 * Parses a `--since`/`--until` value like hubble: a relative duration meaning "that long
 * ago" (`5m`, `1h`), RFC 3339 (`2024-05-01T10:00:00Z`), `2006-01-02T15:04[:05]`,
 * `2006-01-02`, or a time of day today (`15:04[:05]`). Throws {@link UsageError}.
 */
export function parseTimeFlag(flag: string, value: string, nowMs: number = Date.now()): Timestamp {
  const rel = parseDurationMs(value);
  if (rel !== undefined) return timestampFromMs(Math.round(nowMs - rel));
  let ms = Number.NaN;
  if (ABSOLUTE.some((re) => re.test(value))) {
    ms = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00` : value);
  } else {
    const tod = /^(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
    if (tod) {
      const d = new Date(nowMs);
      d.setHours(Number(tod[1]), Number(tod[2]), Number(tod[3] ?? 0), 0);
      ms = d.getTime();
    }
  }
  if (Number.isNaN(ms)) {
    throw new UsageError(
      `invalid --${flag} "${value}": use RFC 3339 (2006-01-02T15:04:05Z) or a duration like 5m, 1h`,
    );
  }
  return timestampFromMs(ms);
}
