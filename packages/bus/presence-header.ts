import { BusInputError } from "./errors.ts";
import type { PresenceReport } from "./presence-table.ts";

/**
 * gRPC response header carrying the observer's {@link PresenceReport} beside
 * ServerStatus: base64 JSON under a `-bin` name, metadata Hubble clients ignore.
 */
export const PRESENCE_HEADER = "periscope-presence-bin";

/** The header value for `report`. */
export function encodePresenceHeader(report: PresenceReport): string {
  return Buffer.from(JSON.stringify(report), "utf8").toString("base64");
}

/** Decodes a header value; throws {@link BusInputError} when it is not a report. */
export function decodePresenceHeader(value: string): PresenceReport {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(value, "base64").toString("utf8"));
  } catch (err) {
    throw new BusInputError(`${PRESENCE_HEADER} is not base64 JSON`, { cause: err });
  }
  const r = v as Partial<PresenceReport> | null;
  if (
    !r ||
    (r.state !== "ok" && r.state !== "degraded") ||
    !Array.isArray(r.services) ||
    !Array.isArray(r.problems)
  ) {
    throw new BusInputError(`${PRESENCE_HEADER} does not hold a presence report`);
  }
  return r as PresenceReport;
}
