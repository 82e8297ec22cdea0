import type { Timestamp } from "@bufbuild/protobuf/wkt";

/**
 * Timestamp layouts of hubble's --time-format, rendered in UTC as hubble does
 * (protobuf Timestamps convert to UTC times), with Go's layout semantics:
 * - "StampMilli" (default, `Jan _2 15:04:05.000`),
 * - "YearMonthDay" (`2006-01-02`), "YearMonthDayHour" (`2006-01-02T15Z07:00`),
 *   "YearMonthDayHourMinute" (`2006-01-02T15:04Z07:00`),
 * - "RFC3339", "RFC3339Milli" (`.999`), "RFC3339Micro" (`.999999`), "RFC3339Nano"
 *   (`.999999999`): fractions with trailing zeros trimmed, as Go prints them,
 * - "RFC1123Z" (`Mon, 02 Jan 2006 15:04:05 -0700`).
 */
export type TimeLayout =
  | "StampMilli"
  | "YearMonthDay"
  | "YearMonthDayHour"
  | "YearMonthDayHourMinute"
  | "RFC3339"
  | "RFC3339Milli"
  | "RFC3339Micro"
  | "RFC3339Nano"
  | "RFC1123Z";

/** Every layout name, in hubble's order. */
export const TIME_LAYOUTS: readonly TimeLayout[] = [
  "YearMonthDay",
  "YearMonthDayHour",
  "YearMonthDayHourMinute",
  "StampMilli",
  "RFC3339",
  "RFC3339Milli",
  "RFC3339Micro",
  "RFC3339Nano",
  "RFC1123Z",
];

/** The layout named `name` (case-insensitive, as hubble matches it), or undefined. */
export function timeLayoutByName(name: string): TimeLayout | undefined {
  const lower = name.toLowerCase();
  return TIME_LAYOUTS.find((l) => l.toLowerCase() === lower);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/** Seconds range protobuf allows for a Timestamp (0001-01-01 .. 9999-12-31). */
const MIN_SECONDS = -62135596800n;
const MAX_SECONDS = 253402300799n;

/** True when the timestamp is present and within protobuf's valid range. */
export function isValidTimestamp(ts: Timestamp | undefined): ts is Timestamp {
  return (
    ts !== undefined &&
    ts.seconds >= MIN_SECONDS &&
    ts.seconds <= MAX_SECONDS &&
    ts.nanos >= 0 &&
    ts.nanos < 1_000_000_000
  );
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** Go's `.999…` fraction: `digits` digits, trailing zeros (and a bare dot) dropped. */
function trimmedFraction(nanos: string, digits: number): string {
  const trimmed = nanos.slice(0, digits).replace(/0+$/, "");
  return trimmed === "" ? "" : `.${trimmed}`;
}

/** Format a Timestamp in a hubble layout; "N/A" when missing or invalid, as hubble prints. */
export function formatTimestamp(
  ts: Timestamp | undefined,
  layout: TimeLayout = "StampMilli",
): string {
  if (!isValidTimestamp(ts)) return "N/A";
  const d = new Date(Number(ts.seconds) * 1000);
  const nanos = String(ts.nanos).padStart(9, "0");
  const hh = pad(d.getUTCHours());
  const mm = pad(d.getUTCMinutes());
  const hms = `${hh}:${mm}:${pad(d.getUTCSeconds())}`;
  const date = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  switch (layout) {
    case "StampMilli": {
      const day = String(d.getUTCDate()).padStart(2, " ");
      return `${MONTHS[d.getUTCMonth()]} ${day} ${hms}.${nanos.slice(0, 3)}`;
    }
    case "YearMonthDay":
      return date;
    case "YearMonthDayHour":
      return `${date}T${hh}Z`;
    case "YearMonthDayHourMinute":
      return `${date}T${hh}:${mm}Z`;
    case "RFC3339":
      return `${date}T${hms}Z`;
    case "RFC3339Milli":
      return `${date}T${hms}${trimmedFraction(nanos, 3)}Z`;
    case "RFC3339Micro":
      return `${date}T${hms}${trimmedFraction(nanos, 6)}Z`;
    case "RFC3339Nano":
      return `${date}T${hms}${trimmedFraction(nanos, 9)}Z`;
    case "RFC1123Z":
      return `${DAYS[d.getUTCDay()]}, ${pad(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${pad(d.getUTCFullYear(), 4)} ${hms} +0000`;
  }
}
