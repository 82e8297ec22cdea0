import type { Timestamp } from "@bufbuild/protobuf/wkt";

/**
 * Timestamp layouts of hubble's --time-format, rendered in UTC as hubble
 * does (protobuf Timestamps convert to UTC times):
 * - "StampMilli" (default, "Jan _2 15:04:05.000"),
 * - "RFC3339" ("2006-01-02T15:04:05Z"), "RFC3339Milli", "RFC3339Micro",
 * - "RFC3339Nano" (fraction with trailing zeros trimmed).
 */
export type TimeLayout = "StampMilli" | "RFC3339" | "RFC3339Milli" | "RFC3339Micro" | "RFC3339Nano";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

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

/** Format a Timestamp in a hubble layout; "N/A" when missing or invalid, as hubble prints. */
export function formatTimestamp(
  ts: Timestamp | undefined,
  layout: TimeLayout = "StampMilli",
): string {
  if (!isValidTimestamp(ts)) return "N/A";
  const d = new Date(Number(ts.seconds) * 1000);
  const nanos = String(ts.nanos).padStart(9, "0");
  const hms = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  if (layout === "StampMilli") {
    const day = String(d.getUTCDate()).padStart(2, " ");
    return `${MONTHS[d.getUTCMonth()]} ${day} ${hms}.${nanos.slice(0, 3)}`;
  }
  const date = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  let fraction = "";
  if (layout === "RFC3339Milli") fraction = `.${nanos.slice(0, 3)}`;
  else if (layout === "RFC3339Micro") fraction = `.${nanos.slice(0, 6)}`;
  else if (layout === "RFC3339Nano") {
    const trimmed = nanos.replace(/0+$/, "");
    fraction = trimmed === "" ? "" : `.${trimmed}`;
  }
  return `${date}T${hms}${fraction}Z`;
}
