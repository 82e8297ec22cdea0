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

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Milliseconds of a zone suffix (`Z`, `+02:00`, `-0700`); 0 when absent (UTC, as Go parses). */
function zoneOffsetMs(zone: string | undefined): number {
  if (zone === undefined || zone === "" || zone === "Z") return 0;
  const m = /^([+-])(\d{2}):?(\d{2})$/.exec(zone);
  if (!m) return Number.NaN;
  const ms = (Number(m[2]) * 60 + Number(m[3])) * 60_000;
  return m[1] === "-" ? -ms : ms;
}

/**
 * Absolute times as hubble parses them (Go's time.Parse: a time without a zone is UTC):
 * `2006-01-02`, `2006-01-02T15Z07:00`, `2006-01-02T15:04Z07:00`, RFC 3339 with any
 * fraction, `Mon, 02 Jan 2006 15:04:05 -0700` (RFC 1123Z); zone-less
 * `2006-01-02T15:04[:05]` and a time of day `15:04[:05]` (today) are read as UTC too.
 * Returns NaN when `value` is none of them.
 */
function parseAbsoluteMs(value: string, nowMs: number): number {
  const iso =
    /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:\d{2})?)?$/.exec(
      value,
    );
  if (iso) {
    const [, y, mo, d, h, mi, sec, frac, zone] = iso;
    if (h !== undefined && mi === undefined && zone === undefined) return Number.NaN;
    const ms =
      Date.UTC(
        Number(y),
        Number(mo) - 1,
        Number(d),
        Number(h ?? 0),
        Number(mi ?? 0),
        Number(sec ?? 0),
      ) + Math.floor(Number(`0.${frac ?? "0"}`) * 1000);
    return ms - zoneOffsetMs(zone);
  }
  const rfc1123 =
    /^[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})$/.exec(
      value,
    );
  if (rfc1123) {
    const [, d, mon, y, h, mi, sec, zone] = rfc1123;
    const month = MONTHS.indexOf(mon ?? "");
    if (month < 0) return Number.NaN;
    return (
      Date.UTC(Number(y), month, Number(d), Number(h), Number(mi), Number(sec)) - zoneOffsetMs(zone)
    );
  }
  const tod = /^(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (tod) {
    const d = new Date(nowMs);
    return Date.UTC(
      d.getUTCFullYear(),
      d.getUTCMonth(),
      d.getUTCDate(),
      Number(tod[1]),
      Number(tod[2]),
      Number(tod[3] ?? 0),
    );
  }
  return Number.NaN;
}

/**
 * Parses a `--since`/`--until` value like hubble: a relative duration meaning "that long
 * ago" (`5m`, `1h`), or an absolute time (see {@link parseAbsoluteMs}: RFC 3339,
 * `2006-01-02` = midnight UTC, …). Throws {@link UsageError}.
 */
export function parseTimeFlag(flag: string, value: string, nowMs: number = Date.now()): Timestamp {
  const rel = parseDurationMs(value);
  if (rel !== undefined) return timestampFromMs(Math.round(nowMs - rel));
  const ms = parseAbsoluteMs(value, nowMs);
  if (Number.isNaN(ms)) {
    throw new UsageError(
      `invalid --${flag} "${value}": use a duration like 5m, 1h or a time like 2006-01-02, 2006-01-02T15:04:05Z, 2006-01-02T15:04:05.000+07:00`,
    );
  }
  return timestampFromMs(ms);
}
